"""Throwaway PostgreSQL databases and Redis servers for the test session.

PostgreSQL: a fresh database on the server at ``BOXOFFICE_TEST_POSTGRES_URL`` (default: the
machine's, ``postgresql://postgres@127.0.0.1:5432/postgres``), dropped at the end.
Redis: ``BOXOFFICE_TEST_REDIS_URL`` if set, else a private ``redis-server`` on a free port.
Under ``CI=true`` a missing service fails the run instead of skipping.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ADMIN_URL = os.environ.get(
    "BOXOFFICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required under CI=true", pytrace=False)
    pytest.skip(f"{what} is not available")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresDatabase:
    name: str
    admin_url: str

    @property
    def url(self) -> str:
        base = self.admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{self.name}"

    @property
    def dsn(self) -> str:
        return self.admin_url.rsplit("/", 1)[0] + f"/{self.name}"


async def create_database(prefix: str = "bo_test") -> PostgresDatabase:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {ADMIN_URL} ({exc})")
        raise
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PostgresDatabase(name, ADMIN_URL)


async def drop_database(db: PostgresDatabase) -> None:
    conn = await asyncpg.connect(db.admin_url, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        await conn.close()


class RedisServer:
    """A private redis-server process (or the one named by BOXOFFICE_TEST_REDIS_URL)."""

    def __init__(self) -> None:
        self.url = os.environ.get("BOXOFFICE_TEST_REDIS_URL", "")
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._dir: str | None = None

    async def start(self) -> None:
        if self.url:
            await self._wait()
            return
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server")
        self._dir = tempfile.mkdtemp(prefix="bo-redis-")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await self._wait()

    async def _wait(self) -> None:
        deadline = time.monotonic() + 10
        while True:
            client = Redis.from_url(self.url)
            try:
                await client.ping()
                return
            except (OSError, RedisConnectionError) as exc:
                if time.monotonic() > deadline:
                    unavailable(f"Redis at {self.url} ({exc})")
                await asyncio.sleep(0.05)
            finally:
                await client.aclose()

    async def restart(self) -> None:
        """Kill and start the private server again on the same port (its data is gone)."""
        assert self.process is not None, "restart needs a private redis-server"
        self.process.kill()
        self.process.wait()
        binary = shutil.which("redis-server")
        assert binary is not None and self._dir is not None
        self.process = subprocess.Popen(
            [
                str(binary),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await self._wait()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
