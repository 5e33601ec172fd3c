"""Throwaway PostgreSQL database and Redis server for a benchmark run, with a session on sale
built through the services (so the benchmark reads what production would)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
from sqlalchemy import insert

from bench.harness import free_port
from boxoffice import pii
from boxoffice.cli import migrate
from boxoffice.clock import utcnow
from boxoffice.config import Settings
from boxoffice.ids import new_id
from boxoffice.models.identity import Role, User, UserStatus
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.services import event_sessions, events, revocation, seat_maps, tenants, tiers, venues
from boxoffice.services.seat_maps import RowSpec, SectionSpec
from boxoffice.services.viewer import Viewer

ADMIN_URL = os.environ.get(
    "BOXOFFICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
OPERATOR = Viewer(user_id="bench-operator", roles=frozenset({Role.OPERATOR}))
BENCH_OPERATION_LIMITS = (
    '{"*": [10000000, 60], "createHold": [10000000, 60], "createOrder": [10000000, 60], '
    '"startPayment": [10000000, 60]}'
)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is needed"
    port = free_port()
    folder = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # ready when it answers, not after a guess
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", port), 1) as c,
            ):
                c.sendall(b"PING\r\n")
                if c.recv(16).startswith(b"+PONG"):
                    break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    name = f"bo_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = await asyncpg.connect(ADMIN_URL)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + f"/{name}"
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        conn = await asyncpg.connect(ADMIN_URL)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


def bench_env(database_url: str, redis_url: str | None, data_dir: str) -> dict[str, str]:
    env = {
        "BOXOFFICE_ENV": "test",
        "BOXOFFICE_DATABASE_URL": database_url,
        "BOXOFFICE_DATA_DIR": data_dir,
        "BOXOFFICE_JWT_SECRET": "bench-secret-" + "x" * 40,
        "BOXOFFICE_TICKET_SIGNING_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "BOXOFFICE_RUN_BACKGROUND_JOBS": "false",
        "BOXOFFICE_ARGON2_MEMORY_KIB": "1024",
        "BOXOFFICE_ARGON2_TIME_COST": "1",
        "BOXOFFICE_LOG_LEVEL": "WARNING",
        # a benchmark drives thousands of operations through a few users; real users keep
        # the per-user limits of services/operation_limits.py
        "BOXOFFICE_OPERATION_LIMITS": BENCH_OPERATION_LIMITS,
    }
    if redis_url:
        env["BOXOFFICE_REDIS_URL"] = redis_url
    return env


# a password hash no password matches (not a valid PHC string): bench users never sign in
UNUSABLE_PASSWORD = "!bench-no-sign-in"


async def bulk_customers(rt: Runtime, n: int) -> list[str]:
    """Insert ``n`` CUSTOMER accounts in one executemany (no password hashing, no audit
    rows, no service call per user) and return their ids; ``customer_tokens`` mints their
    access tokens. Each has an e-mail (encrypted, with its lookup hash) like a real account,
    so notifications have somewhere to go."""
    now = utcnow()
    run = secrets.token_hex(3)
    ids = [new_id() for _ in range(n)]
    rows: list[dict[str, object]] = []
    for i, user_id in enumerate(ids):
        email = f"bench{i}-{run}@example.com"
        rows.append(
            {
                "id": user_id,
                "email": email,
                "email_hash": pii.email_hash(email),
                "password_hash": UNUSABLE_PASSWORD,
                "nickname": f"bench{i}",
                "gender": 0,
                "status": UserStatus.ACTIVE,
                "roles": [Role.CUSTOMER.value],
                "token_version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    if rows:
        async with rt.db.write() as session:
            connection = await session.connection()
            # Core executemany: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues")
            await connection.execute(insert(User.__table__), rows)  # type: ignore[attr-defined]
    return ids


async def customer_tokens(rt: Runtime, user_ids: list[str]) -> list[str]:
    """An access token per user (as sign-in would issue, one sign-in session each).

    Issued after the revocation store's epoch (``services.revocation``), as on a server that
    has been up a while: a token older than the epoch is checked against the database on
    every use (the store may have lost its markers), which a fresh benchmark would otherwise
    measure instead of the normal path."""
    codes = rt.backends.codes
    await codes.put_if_absent(
        revocation.EPOCH_KEY, str(int(time.time())), ttl_seconds=revocation.EPOCH_TTL_SECONDS
    )
    epoch = int(await codes.get(revocation.EPOCH_KEY) or 0)
    while int(time.time()) <= epoch:  # "iat" counts whole seconds
        await asyncio.sleep(0.05)
    return [
        rt.auth.tokens.issue(
            user_id=user_id,
            session_id=f"bench-{user_id}",
            version=1,
            roles=[Role.CUSTOMER.value],
            tenant_roles={},
        )
        for user_id in user_ids
    ]


@dataclass
class OnSale:
    tenant_id: str
    event_id: str
    session_id: str
    ga_tier_id: str
    seated_tier_id: str | None
    tokens: list[str]
    user_ids: list[str]


async def build_sale(
    env: dict[str, str],
    *,
    users: int = 1,
    ga_capacity: int = 1_000_000,
    seats: int = 0,
    queue_admit_per_second: int | None = None,
    sale_starts_at: datetime | None = None,
) -> OnSale:
    """A tenant, venue, event and one session on sale now (or from ``sale_starts_at``);
    ``users`` customers with tokens (``bulk_customers``). With ``queue_admit_per_second`` the
    session sells through the waiting room at that rate."""
    for key, value in env.items():
        os.environ[key] = value
    settings = Settings()
    rt: Runtime = await open_runtime(settings)
    try:
        return await stage_sale(
            rt,
            users=users,
            ga_capacity=ga_capacity,
            seats=seats,
            queue_admit_per_second=queue_admit_per_second,
            sale_starts_at=sale_starts_at,
        )
    finally:
        await rt.close()


async def stage_sale(
    rt: Runtime,
    *,
    users: int = 1,
    ga_capacity: int = 1_000_000,
    seats: int = 0,
    queue_admit_per_second: int | None = None,
    sale_starts_at: datetime | None = None,
) -> OnSale:
    """``build_sale`` on a runtime the caller has open."""
    tenant = await tenants.create_tenant(
        db=rt.db, viewer=OPERATOR, name="Bench Club " + secrets.token_hex(3)
    )
    venue = await venues.create_venue(
        db=rt.db,
        viewer=OPERATOR,
        tenant_id=tenant.id,
        name="Bench Hall",
        city="上海",
        address="1 Road",
    )
    seat_map = None
    if seats:
        per_row = 50
        rows = max(1, seats // per_row)
        seat_map = await seat_maps.create_seat_map(
            db=rt.db,
            viewer=OPERATOR,
            venue_id=venue.id,
            name="Bench",
            sections=[SectionSpec("A", rows=[RowSpec(f"R{r}", per_row) for r in range(rows)])],
        )
    event = await events.create_event(
        db=rt.db,
        viewer=OPERATOR,
        tenant_id=tenant.id,
        title="Bench Show",
        category="CONCERT",
        city="上海",
        venue_id=venue.id,
    )
    starts = utcnow() + timedelta(days=3)
    session = await event_sessions.create_session(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        event_id=event.id,
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        sale_starts_at=sale_starts_at or utcnow() - timedelta(hours=1),
        seat_map_id=seat_map.id if seat_map else None,
        queue_enabled=queue_admit_per_second is not None,
        queue_admit_per_second=queue_admit_per_second,
    )
    ga = await tiers.create_tier(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=session.id,
        name="GA",
        price=Decimal("180.00"),
        capacity=ga_capacity,
        sections=None,
    )
    seated = None
    if seat_map:
        seated = await tiers.create_tier(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=OPERATOR,
            session_id=session.id,
            name="Seated",
            price=Decimal("380.00"),
            capacity=None,
            sections=["A"],
        )
    await events.publish_event(db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=event.id)
    user_ids = await bulk_customers(rt, users) if users else []
    tokens = await customer_tokens(rt, user_ids) if user_ids else []
    return OnSale(
        tenant.id, event.id, session.id, ga.id, seated.id if seated else None, tokens, user_ids
    )
