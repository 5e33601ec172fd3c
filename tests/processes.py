"""Real ``boxoffice serve`` processes for multi-process tests, sharing the test's PostgreSQL
database and Redis (so holds, subscriptions and sweepers really cross processes)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from boxoffice.config import Settings
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent


def pii_environment(settings: Settings) -> dict[str, str]:
    """The personal-data keys of ``settings`` as ``BOXOFFICE_*`` variables (a child process
    must read what the test wrote)."""
    env = {}
    if settings.pii_keys is not None:
        env["BOXOFFICE_PII_KEYS"] = settings.pii_keys.get_secret_value()
    if settings.pii_hash_key is not None:
        env["BOXOFFICE_PII_HASH_KEY"] = settings.pii_hash_key.get_secret_value()
    if settings.pii_key_id is not None:
        env["BOXOFFICE_PII_KEY_ID"] = settings.pii_key_id
    return env


class ServerProcess:
    def __init__(self, settings: Settings, data_dir: Path, *, jobs: bool) -> None:
        self.port = free_port()
        assert settings.jwt_secret is not None
        assert settings.ticket_signing_key is not None
        self.env = {
            **os.environ,
            "BOXOFFICE_ENV": "test",
            "BOXOFFICE_DATABASE_URL": settings.database_url,
            "BOXOFFICE_REDIS_URL": settings.redis_url or "",
            "BOXOFFICE_JWT_SECRET": settings.jwt_secret.get_secret_value(),
            "BOXOFFICE_TICKET_SIGNING_KEY": settings.ticket_signing_key.get_secret_value(),
            **pii_environment(settings),
            "BOXOFFICE_DATA_DIR": str(data_dir),
            "BOXOFFICE_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
            "BOXOFFICE_RUN_BACKGROUND_JOBS": "true" if jobs else "false",
            "BOXOFFICE_ARGON2_MEMORY_KIB": "1024",
            "BOXOFFICE_ARGON2_TIME_COST": "1",
            "BOXOFFICE_ARGON2_PARALLELISM": "1",
            "BOXOFFICE_LOG_LEVEL": "WARNING",
            "BOXOFFICE_HOLD_TTL_SECONDS": str(settings.hold_ttl_seconds),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                [sys.executable, "-m", "boxoffice", "serve", "--port", str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.process.poll() is not None:
                    raise RuntimeError(
                        self.process.stderr.read().decode() if self.process.stderr else "died"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.url + "/readyz", timeout=1)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class WorkerProcess:
    """A real ``boxoffice worker`` (background jobs only) on the test's database and Redis."""

    def __init__(self, settings: Settings, data_dir: Path, *, name: str = "worker") -> None:
        assert settings.jwt_secret is not None
        assert settings.ticket_signing_key is not None
        self.env = {
            **os.environ,
            "BOXOFFICE_ENV": "test",
            "BOXOFFICE_DATABASE_URL": settings.database_url,
            "BOXOFFICE_REDIS_URL": settings.redis_url or "",
            "BOXOFFICE_JWT_SECRET": settings.jwt_secret.get_secret_value(),
            "BOXOFFICE_TICKET_SIGNING_KEY": settings.ticket_signing_key.get_secret_value(),
            **pii_environment(settings),
            "BOXOFFICE_DATA_DIR": str(data_dir),
            "BOXOFFICE_LOG_LEVEL": "WARNING",
            "BOXOFFICE_LOG_JSON": "false",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"{name}.log"

    @property
    def instance_id(self) -> str:
        """The id its job runner holds leases under (``Runtime.instance_id``)."""
        assert self.process is not None
        return f"{os.uname().nodename}:{self.process.pid}"

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "boxoffice", "worker"],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease given back, transactions cut off mid-way."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, data_dir: Path, count: int = 2, *, jobs: bool = False
) -> AsyncIterator[list[ServerProcess]]:
    servers = [ServerProcess(settings, data_dir, jobs=jobs and i == 0) for i in range(count)]
    try:
        await asyncio.gather(*(s.start() for s in servers))
        yield servers
    finally:
        for server in servers:
            server.stop()
