"""The ``boxoffice`` command: serve, worker, migrate, seed-demo, create-user, rebuild-inventory,
rotate-pii-key, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from boxoffice.config import Settings
from boxoffice.errors import BoxofficeError, ConfigurationError
from boxoffice.logs import configure_logging


def _migrations_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_migrations", here.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise ConfigurationError("cannot find the Alembic migrations folder")


def alembic_config(database_url: str | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    if database_url:
        cfg.attributes["database_url"] = database_url
    return cfg


def migrate(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    if args.workers > 1 and not settings.redis_url:
        raise ConfigurationError(
            "--workers > 1 needs BOXOFFICE_REDIS_URL: the in-process backends serve one process"
        )
    if args.workers > 1 and settings.is_sqlite:
        raise ConfigurationError("--workers > 1 needs PostgreSQL (BOXOFFICE_DATABASE_URL)")
    settings.secrets  # noqa: B018 - refuse to start without them in prod
    uvicorn.run(
        "boxoffice.app:serve_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        ws_max_size=256 * 1024,
        ws_per_message_deflate=settings.ws_compression,
        lifespan="on",
        # uvloop, accepting every waiting connection per turn (see boxoffice.serving)
        loop="boxoffice.serving:new_event_loop",
    )
    return 0


def cmd_worker(_args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.jobs import JobRunner
    from boxoffice.runtime import open_runtime

    async def run() -> None:
        rt = await open_runtime(settings)
        runner = JobRunner(rt)
        runner.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.stop()
            await rt.close()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.runtime import install_pii

    install_pii(settings)  # the data migrations encrypt personal data with the configured keys
    migrate(settings.database_url, args.revision)
    print(f"migrated {settings.database_url.split('@')[-1]} to {args.revision}")
    return 0


def cmd_seed_demo(_args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.demo import seed_demo
    from boxoffice.runtime import open_runtime

    async def run() -> list[str]:
        rt = await open_runtime(settings)
        try:
            return await seed_demo(rt)
        finally:
            await rt.close()

    for line in asyncio.run(run()):
        print(line)
    return 0


def cmd_create_user(args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.db import Database
    from boxoffice.models.identity import Role
    from boxoffice.runtime import install_pii, make_auth
    from boxoffice.services.accounts import create_user

    install_pii(settings)

    async def run() -> str:
        db = Database(settings.database_url)
        try:
            user = await create_user(
                db=db,
                hasher=make_auth(settings).hasher,
                email=args.email,
                password=args.password,
                role=Role(args.role),
                tenant_id=args.tenant,
            )
            return user.id
        finally:
            await db.dispose()

    user_id = asyncio.run(run())
    print(f"created {args.role} {args.email}")
    print(user_id)
    return 0


def cmd_rebuild_inventory(args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.runtime import open_runtime
    from boxoffice.services import inventory

    async def run() -> list[str]:
        rt = await open_runtime(settings)
        try:
            lines = []
            for session_id in args.sessions:
                rules = await rt.session_rules.get(session_id)
                version = await inventory.load_ledger(
                    db=rt.db, ledger=rt.backends.ledger, rules=rules, force=True
                )
                lines.append(f"rebuilt {session_id} (version {version})")
            return lines
        finally:
            await rt.close()

    for line in asyncio.run(run()):
        print(line)
    return 0


def cmd_rotate_pii_key(args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.db import Database
    from boxoffice.runtime import install_pii
    from boxoffice.services.pii_rotation import rotate_pii_key

    cipher = install_pii(settings)

    async def run() -> list[str]:
        db = Database(settings.database_url)
        try:
            report = await rotate_pii_key(db, cipher, rehash=args.rehash)
        finally:
            await db.dispose()
        return [f"{r.table}: {r.resealed} of {r.scanned} re-sealed" for r in report]

    for line in asyncio.run(run()):
        print(line)
    print(f"personal data is sealed with key {cipher.current!r}")
    return 0


def cmd_export_schema(_args: argparse.Namespace, settings: Settings) -> int:
    from boxoffice.schema import build_schema

    sys.stdout.write(build_schema(settings).as_str() + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boxoffice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("worker", help="run the background jobs only").set_defaults(func=cmd_worker)
    mig = sub.add_parser("migrate", help="apply Alembic migrations to the configured database")
    mig.add_argument("--revision", default="head")
    mig.set_defaults(func=cmd_migrate)
    sub.add_parser("seed-demo", help="create the demo tenant, accounts and catalog").set_defaults(
        func=cmd_seed_demo
    )
    create = sub.add_parser("create-user", help="create an account; prints its id last")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument(
        "--role", required=True, choices=["CUSTOMER", "ORGANIZER", "OPERATOR", "AGENT", "CHECKIN"]
    )
    create.add_argument("--tenant", default=None, help="tenant id (ORGANIZER and CHECKIN)")
    create.set_defaults(func=cmd_create_user)
    rebuild = sub.add_parser(
        "rebuild-inventory", help="rebuild sessions' seat ledger from the database (sold, unpaid)"
    )
    rebuild.add_argument("sessions", nargs="+", metavar="SESSION")
    rebuild.set_defaults(func=cmd_rebuild_inventory)
    rotate = sub.add_parser(
        "rotate-pii-key",
        help="re-seal personal data sealed with an older key (BOXOFFICE_PII_KEY_ID) with the "
        "current one",
    )
    rotate.add_argument(
        "--rehash", action="store_true", help="also recompute every lookup hash (new hash key)"
    )
    rotate.set_defaults(func=cmd_rotate_pii_key)
    sub.add_parser("export-schema", help="print the GraphQL SDL").set_defaults(
        func=cmd_export_schema
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command != "export-schema":
        configure_logging(settings.log_level, json=settings.log_json and not sys.stderr.isatty())
    try:
        return int(args.func(args, settings))
    except ConfigurationError as exc:
        print(f"boxoffice: configuration error: {exc}", file=sys.stderr)
        return 2
    except BoxofficeError as exc:
        print(f"boxoffice: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
