"""Database engines and sessions.

``Database.write()`` opens a session inside a transaction that is committed when the block
ends (rolled back on error); ``Database.read()`` opens a read-only session. On SQLite writes
begin with ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of
failing when a read lock is upgraded; on PostgreSQL both use the same pool (reads may move to
a replica later).

Retrying: on PostgreSQL two transactions can deadlock (each waits for a row the other locked;
the server aborts one with SQLSTATE 40P01) and a transaction at REPEATABLE READ or SERIALIZABLE
can fail to serialize (40001). Such a failure says nothing about the request: the same
transaction, run again from the start, usually succeeds. ``retrying`` runs an operation again,
with jittered exponential backoff, when it raised one of these — but only operations whose
whole effect is their transaction (or that undo what they did outside it) and that re-check
their state inside it, so running them twice is the same as running them once. Which write
paths qualify is listed in the README ("Faults").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession

log = logging.getLogger("boxoffice.db")

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 30_000
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected
RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY = 0.02
RETRY_MAX_DELAY = 0.5


def is_retryable(exc: BaseException) -> bool:
    """A serialization failure or a deadlock (asyncpg's ``SerializationError`` /
    ``DeadlockDetected``, wrapped by SQLAlchemy in a ``DBAPIError``)."""
    if not isinstance(exc, DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return sqlstate in RETRYABLE_SQLSTATES


def retry_delay(attempt: int) -> float:
    """Seconds to wait before running again after the ``attempt``-th failure ("full
    jitter": uniform up to an exponentially growing cap, so rivals do not collide again)."""
    return random.uniform(0, min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**attempt))


async def retrying(
    operation: Callable[[], Awaitable[T]], *, attempts: int = RETRY_ATTEMPTS, what: str = ""
) -> T:
    """Run ``operation`` (which opens its own transaction) and run it again, up to
    ``attempts`` times in all, while it fails with a serialization failure or a deadlock.
    Any other error, or the last retryable one, is raised."""
    for attempt in range(1, attempts + 1):
        try:
            return await operation()
        except DBAPIError as exc:
            if attempt >= attempts or not is_retryable(exc):
                raise
            log.info(
                "%s: %s (sqlstate %s), running it again (attempt %d)",
                what or getattr(operation, "__qualname__", "transaction"),
                type(exc.orig).__name__,
                getattr(exc.orig, "sqlstate", None),
                attempt + 1,
            )
        await asyncio.sleep(retry_delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _sqlite_engine(url: str, *, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(url, poolclass=NullPool if ":memory:" in url else None)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN (so we choose its kind below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    def __init__(self, url: str, *, pool_size: int = 20, echo: bool = False) -> None:
        self.url = url
        self.pool_size = pool_size
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.write_engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            self.write_engine = create_async_engine(
                url,
                # kept open: a burst (an on-sale's checkouts) borrowing beyond the pool opens
                # connections and closes them again when they come back
                pool_size=pool_size,
                max_overflow=max(1, pool_size // 2),
                pool_recycle=1800,  # no pre-ping: it costs a round trip per checkout
                echo=echo,
            )
            self.read_engine = self.write_engine
        self._write_sessions = async_sessionmaker(
            self.write_engine, class_=AsyncSession, expire_on_commit=False
        )
        self._read_sessions = async_sessionmaker(
            self.read_engine, class_=AsyncSession, expire_on_commit=False, autoflush=False
        )

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on any error."""
        async with self._write_sessions() as session, session.begin():
            yield session

    async def write_retrying(
        self,
        work: Callable[[AsyncSession], Awaitable[T]],
        *,
        attempts: int = RETRY_ATTEMPTS,
        what: str = "",
    ) -> T:
        """``work`` in a write transaction; the whole transaction runs again (a fresh session)
        after a serialization failure or a deadlock (see ``retrying``). ``work`` must be safe
        to run again: no effects outside the transaction, state re-read inside it."""

        async def once() -> T:
            async with self.write() as session:
                return await work(session)

        return await retrying(once, attempts=attempts, what=what or work.__qualname__)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reads; closing it ends its transaction and keeps loaded objects
        usable (a rollback would expire them)."""
        async with self._read_sessions() as session:
            yield session

    async def fill_pool(self) -> int:
        """Open the pool's connections now (a server about to take traffic), so that the first
        burst does not pay for connection set-up: in the flash-sale bench the admitted
        buyers' first checkouts opened them, with a TLS attempt each (asyncpg's ``prefer``).
        Returns how many were opened; SQLite has nothing to open."""
        if self.is_sqlite:
            return 0

        opened = 0
        try:
            # each held until all are open, or the pool would hand the same one back
            async with contextlib.AsyncExitStack() as held:
                for _ in range(self.pool_size):
                    await held.enter_async_context(self.write_engine.connect())
                    opened += 1
        except Exception:  # the database is down: the first requests will say so
            log.warning("opened %d of %d pool connections", opened, self.pool_size, exc_info=True)
        return opened

    async def ping(self) -> None:
        async with self.read_engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
