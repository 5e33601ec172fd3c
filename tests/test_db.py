"""Database sessions: running a transaction again after a real PostgreSQL deadlock or
serialization failure."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.db import Database, is_retryable, retry_delay, retrying
from boxoffice.models.identity import Tenant
from boxoffice.runtime import Runtime
from tests.helpers import make_tenant

on_postgresql = pytest.mark.parametrize("backend", ["pg_redis"])


async def rename(session: AsyncSession, tenant: Tenant, name: str) -> None:
    await session.exec(  # type: ignore[call-overload]
        text("UPDATE tenants SET name = :name WHERE id = :id"),
        params={"name": name, "id": tenant.id},
    )


async def wait_for_a_lock_wait(db: Database) -> None:
    """Until some transaction of this database waits for a row lock (bounded)."""
    for _ in range(500):
        async with db.read() as session:
            waiting = (
                await session.exec(  # type: ignore[call-overload]
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
            ).scalar_one()
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nobody waited for a lock")


async def deadlock(rt: Runtime, *, attempts: int) -> tuple[list[BaseException | None], str]:
    """Two transactions lock tenants A and B in opposite orders. The victim (the one
    PostgreSQL aborts) is made the one run by ``retrying``: it waits last and checks for
    deadlocks after 50 ms, its rival after 10 s. Returns the victim's attempts' outcomes
    (None: committed) and the rival's outcome."""
    a, b = await make_tenant(rt, "A"), await make_tenant(rt, "B")
    a_locked, rival_waits = asyncio.Event(), asyncio.Event()
    outcomes: list[BaseException | None] = []

    async def victim(session: AsyncSession) -> str:
        first = not outcomes
        outcomes.append(None)
        try:
            await session.exec(text("SET LOCAL deadlock_timeout = '50ms'"))  # type: ignore[call-overload]
            await rename(session, a, "A by victim")
            if first:
                a_locked.set()
                await asyncio.wait_for(rival_waits.wait(), 10)
            await rename(session, b, "B by victim")
            return "victim committed"
        except BaseException as exc:
            outcomes[-1] = exc
            raise

    async def rival() -> str:
        async with rt.db.write() as session:
            await session.exec(text("SET LOCAL deadlock_timeout = '10s'"))  # type: ignore[call-overload]
            await asyncio.wait_for(a_locked.wait(), 10)
            await rename(session, b, "B by rival")
            waiting = asyncio.create_task(rename(session, a, "A by rival"))
            await wait_for_a_lock_wait(rt.db)
            rival_waits.set()
            await waiting
        return "rival committed"

    results = await asyncio.gather(
        rt.db.write_retrying(victim, attempts=attempts), rival(), return_exceptions=True
    )
    assert results[1] == "rival committed", results
    if isinstance(results[0], BaseException):
        raise results[0]
    return outcomes, str(results[0])


@on_postgresql
async def test_a_deadlocked_transaction_runs_again_and_commits(rt: Runtime):
    # given two transactions that lock two rows in opposite orders
    # when PostgreSQL breaks the deadlock by aborting the retrying one
    outcomes, result = await deadlock(rt, attempts=3)
    # then it ran again once the rival committed, and both changes are in
    assert result == "victim committed"
    assert len(outcomes) == 2
    assert isinstance(outcomes[0], DBAPIError) and is_retryable(outcomes[0])
    assert outcomes[1] is None
    async with rt.db.read() as session:
        names = sorted((await session.exec(text("SELECT name FROM tenants"))).scalars())  # type: ignore[call-overload]
    assert names == ["A by victim", "B by victim"]


@on_postgresql
async def test_without_a_retry_the_deadlock_reaches_the_caller(rt: Runtime):
    with pytest.raises(DBAPIError) as raised:
        await deadlock(rt, attempts=1)
    assert getattr(raised.value.orig, "sqlstate", None) == "40P01"


async def read_name(session: AsyncSession, tenant: Tenant) -> str:
    result = await session.exec(  # type: ignore[call-overload]
        text("SELECT name FROM tenants WHERE id = :id"), params={"id": tenant.id}
    )
    return str(result.scalar_one())


async def serializable(session: AsyncSession) -> None:
    """Make the session's transaction SERIALIZABLE (it must be its first statement)."""
    await session.exec(text("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))  # type: ignore[call-overload]


async def lost_update(rt: Runtime, *, attempts: int) -> tuple[list[BaseException | None], str]:
    """Two SERIALIZABLE transactions read a tenant's name and append to it. The one run by
    ``write_retrying`` reads first; the rival then reads, writes and commits; the first one's
    write then cannot be serialized after the rival's (PostgreSQL raises 40001). Returns the
    retried function's attempts' outcomes (None: committed) and the final name."""
    tenant = await make_tenant(rt, "T")
    victim_read, rival_committed = asyncio.Event(), asyncio.Event()
    outcomes: list[BaseException | None] = []

    async def append_victim(session: AsyncSession) -> str:
        first = not outcomes
        outcomes.append(None)
        try:
            await serializable(session)
            name = await read_name(session, tenant)
            if first:
                victim_read.set()
                await asyncio.wait_for(rival_committed.wait(), 10)
            await rename(session, tenant, name + "+victim")
            return name
        except BaseException as exc:
            outcomes[-1] = exc
            raise

    async def append_rival() -> None:
        await asyncio.wait_for(victim_read.wait(), 10)
        try:
            async with rt.db.write() as session:
                await serializable(session)
                name = await read_name(session, tenant)
                await rename(session, tenant, name + "+rival")
        finally:
            rival_committed.set()

    results = await asyncio.gather(
        rt.db.write_retrying(append_victim, attempts=attempts),
        append_rival(),
        return_exceptions=True,
    )
    assert results[1] is None, results
    if isinstance(results[0], BaseException):
        raise results[0]
    async with rt.db.read() as session:
        return outcomes, await read_name(session, tenant)


@on_postgresql
async def test_a_serialization_failure_runs_again_and_commits(rt: Runtime):
    # given two SERIALIZABLE read-then-write transactions on the same row, the retried one
    # reading before the rival commits and writing after
    # when PostgreSQL refuses its write (could not serialize access)
    outcomes, name = await lost_update(rt, attempts=3)
    # then it ran again on the rival's result: no update is lost
    assert len(outcomes) == 2
    failure = outcomes[0]
    assert isinstance(failure, DBAPIError) and is_retryable(failure)
    assert getattr(failure.orig, "sqlstate", None) == "40001"
    assert outcomes[1] is None
    assert name == "T+rival+victim"


@on_postgresql
async def test_without_a_retry_the_serialization_failure_reaches_the_caller(rt: Runtime):
    with pytest.raises(DBAPIError) as raised:
        await lost_update(rt, attempts=1)
    assert getattr(raised.value.orig, "sqlstate", None) == "40001"


@on_postgresql
async def test_other_errors_are_not_run_again(rt: Runtime):
    # given an operation that fails for another reason
    calls = 0

    async def divide_by_zero() -> None:
        nonlocal calls
        calls += 1
        async with rt.db.write() as session:
            await session.exec(text("SELECT 1/0"))  # type: ignore[call-overload]

    # then it runs once and its error is raised
    with pytest.raises(DBAPIError) as raised:
        await retrying(divide_by_zero, attempts=5)
    assert not is_retryable(raised.value)
    assert calls == 1


def test_backoff_is_jittered_and_capped():
    delays = [retry_delay(attempt) for attempt in range(1, 12) for _ in range(20)]
    assert all(0 <= d <= 0.5 for d in delays)
    assert len(set(delays)) > 100


async def test_fill_pool_opens_the_pools_connections_before_traffic(rt: Runtime):
    db = Database(rt.db.url, pool_size=3)
    try:
        opened = await db.fill_pool()
        if db.is_sqlite:
            assert opened == 0  # nothing to open
            return
        # then three distinct connections wait in the pool for the first burst
        assert opened == 3
        assert db.write_engine.pool.checkedin() == 3  # type: ignore[attr-defined]
    finally:
        await db.dispose()
