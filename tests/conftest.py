"""Fixtures: both configurations (embedded SQLite + memory, PostgreSQL + Redis), a runtime per
test on clean state, the ASGI app, an HTTP client, and a real uvicorn server for WebSockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy import text
from starlette.applications import Starlette

import boxoffice.models
from boxoffice.app import create_app
from boxoffice.cli import migrate
from boxoffice.config import Settings
from boxoffice.runtime import Runtime, open_runtime
from tests.services import (
    PostgresDatabase,
    RedisServer,
    create_database,
    drop_database,
    free_port,
)

BACKENDS = ("embedded", "pg_redis")
TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEST_SIGNING_SEED = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
TEST_PII_KEYS = "test1=" + "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
TEST_PII_HASH_KEY = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8="


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "env": "test",
        "data_dir": tmp_path / "data",
        "jwt_secret": TEST_JWT_SECRET,
        "ticket_signing_key": TEST_SIGNING_SEED,
        "pii_keys": TEST_PII_KEYS,
        "pii_hash_key": TEST_PII_HASH_KEY,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
        "run_background_jobs": False,
        "log_json": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def pg_database() -> AsyncIterator[PostgresDatabase]:
    database = await create_database()
    await asyncio.to_thread(migrate, database.url)
    yield database
    await drop_database(database)


@pytest.fixture(scope="session")
async def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "boxoffice-test.db"
    url = f"sqlite+aiosqlite:///{path}"
    await asyncio.to_thread(migrate, url)
    return url


async def _clean_database(rt: Runtime) -> None:
    tables = [t.name for t in reversed(boxoffice.models.metadata.sorted_tables)]
    async with rt.db.write() as session:
        if rt.db.is_sqlite:
            for name in tables:
                await session.exec(text(f'DELETE FROM "{name}"'))  # type: ignore[call-overload]
        else:
            joined = ", ".join(f'"{t}"' for t in tables)
            await session.exec(text(f"TRUNCATE {joined} CASCADE"))  # type: ignore[call-overload]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server_port() -> int:
    """The loopback port a live server of this test listens on (also the sandbox payment
    company's callback target, ``public_base_url``)."""
    return free_port()


@pytest.fixture
def settings(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, server_port: int
) -> Settings:
    """Settings of the test's configuration; ``@pytest.mark.settings(...)`` overrides fields.
    Only the services the configuration needs are started."""
    marker = request.node.get_closest_marker("settings")
    overrides: dict[str, Any] = {"public_base_url": f"http://127.0.0.1:{server_port}"}
    overrides.update(marker.kwargs if marker is not None else {})
    if backend == "embedded":
        url: str = request.getfixturevalue("sqlite_url")
        return settings_for(tmp_path, database_url=url, **overrides)
    pg: PostgresDatabase = request.getfixturevalue("pg_database")
    redis: RedisServer = request.getfixturevalue("redis_server")
    return settings_for(tmp_path, database_url=pg.url, redis_url=redis.url, **overrides)


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    if settings.redis_url:
        client = Redis.from_url(settings.redis_url)
        await client.flushdb()
        await client.aclose()
    runtime = await open_runtime(settings)
    await _clean_database(runtime)
    yield runtime
    await runtime.close()


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[Starlette]:
    """Run the app's lifespan around a block (httpx's ASGITransport does not)."""
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(rt: Runtime) -> AsyncIterator[Starlette]:
    application = create_app(runtime=rt)
    async with running(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


class LiveServer:
    def __init__(self, app: Starlette, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        )
        self.task: asyncio.Task[None] | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                self.task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task


@pytest.fixture
async def live_server(app: Starlette, server_port: int) -> AsyncIterator[LiveServer]:
    """A real uvicorn server on loopback serving the test's app (its lifespan already runs)."""
    server = LiveServer(app, server_port)
    await server.start()
    yield server
    await server.stop()
