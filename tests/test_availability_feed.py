"""Availability feeds: snapshot first, merged updates, reloads, and slow subscribers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from boxoffice.backends import Backends, open_backends
from boxoffice.backends.seat_ledger import HoldRequest, SeatLedger
from boxoffice.services.availability_feed import AvailabilityFeeds, AvailabilityUpdate
from tests.ledger_specs import SESSION, seat_id, small_session
from tests.services import RedisServer


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(params=["memory", "redis"])
def feed_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def backends(feed_url: str | None) -> AsyncIterator[Backends]:
    opened = await open_backends(feed_url)
    if opened.redis is not None:
        await opened.redis.flushdb()
    await opened.ledger.load(small_session(), now_ms=now_ms())
    yield opened
    await opened.close()


@pytest.fixture
async def feeds(backends: Backends) -> AsyncIterator[AvailabilityFeeds]:
    ledger = backends.ledger

    async def load(session_id: str):  # type: ignore[no-untyped-def]
        return await ledger.snapshot(session_id, now_ms=now_ms())

    hub = AvailabilityFeeds(backends.broker, load, interval=0.05, subscriber_buffer=4)
    yield hub
    await hub.close()


async def hold(ledger: SeatLedger, hold_id: str, *seats: str) -> None:
    await ledger.hold(SESSION, HoldRequest(hold_id, "u1", 60_000, seat_ids=seats), now_ms=now_ms())


async def next_update(
    updates: AsyncIterator[AvailabilityUpdate], timeout: float = 3.0
) -> AvailabilityUpdate:
    return await asyncio.wait_for(updates.__anext__(), timeout)


async def test_snapshot_then_merged_changes(feeds: AvailabilityFeeds, backends: Backends):
    async with feeds.subscribe(SESSION) as updates:
        first = await next_update(updates)
        assert first.snapshot
        assert first.seats[seat_id("A", 1, 1)] == "A"
        assert first.tiers["front"] == 12
        # when three holds land within one flush interval
        await hold(backends.ledger, "h1", seat_id("A", 1, 1))
        await hold(backends.ledger, "h2", seat_id("A", 1, 2))
        await hold(backends.ledger, "h3", seat_id("A", 1, 3))
        # then the subscriber gets them merged (one or a few messages), versions in order
        seen: dict[str, str] = {}
        last = first.version
        while len(seen) < 3:
            update = await next_update(updates)
            assert not update.snapshot
            assert update.previous_version is not None
            assert update.previous_version <= last < update.version
            last = update.version
            seen.update(update.seats)
        assert seen == {seat_id("A", 1, n): "H" for n in (1, 2, 3)}
        assert update.tiers["front"] == 9


async def test_many_subscribers_share_one_feed(feeds: AvailabilityFeeds, backends: Backends):
    async with feeds.subscribe(SESSION) as a, feeds.subscribe(SESSION) as b:
        assert feeds.subscriber_count(SESSION) == 2
        await next_update(a)
        await next_update(b)
        await hold(backends.ledger, "h1", seat_id("B", 1, 1))
        ua, ub = await next_update(a), await next_update(b)
        assert ua is ub  # built once, delivered to both
    assert feeds.subscriber_count() == 0


async def test_a_reload_reaches_subscribers_as_a_snapshot(
    feeds: AvailabilityFeeds, backends: Backends
):
    async with feeds.subscribe(SESSION) as updates:
        first = await next_update(updates)
        await hold(backends.ledger, "h1", seat_id("A", 2, 2))
        await next_update(updates)
        # the ledger is rebuilt from the database (the hold is lost, as holds are)
        await backends.ledger.load(small_session(), now_ms=now_ms())
        update = await next_update(updates)
        assert update.snapshot
        assert update.version > first.version
        assert update.seats[seat_id("A", 2, 2)] == "A"


async def test_a_slow_subscriber_gets_a_fresh_snapshot(
    feeds: AvailabilityFeeds, backends: Backends
):
    async with feeds.subscribe(SESSION) as updates:
        await next_update(updates)
        feed = feeds._feeds[SESSION]
        subscriber = next(iter(feed.subscribers))
        # when more flushes reach it than its buffer (4) holds while it does not read
        flushed = 0
        i = 0
        while flushed <= feeds.subscriber_buffer:
            before = feed.flushed_version
            await hold(backends.ledger, f"h{i}", seat_id("A", 1 + i // 6, 1 + i % 6))
            i += 1
            for _ in range(300):  # wait for this change's flush, however slow the machine
                if feed.flushed_version > before:
                    break
                await asyncio.sleep(0.01)
            flushed += 1
        # then its buffer was replaced by a snapshot that holds everything
        assert subscriber.queue.qsize() <= feeds.subscriber_buffer
        received = [await next_update(updates) for _ in range(subscriber.queue.qsize())]
        snapshots = [u for u in received if u.snapshot]
        assert snapshots
        final = dict(snapshots[-1].seats)
        for update in received[received.index(snapshots[-1]) + 1 :]:
            final.update(update.seats)
        assert sum(1 for s in final.values() if s == "H") == i


async def test_known_available_follows_the_stream(feeds: AvailabilityFeeds, backends: Backends):
    assert feeds.known_available(SESSION, "ga") is None
    async with feeds.watching(SESSION):
        assert feeds.known_available(SESSION, "ga") == 10
        await backends.ledger.hold(
            SESSION, HoldRequest("h1", "u1", 60_000, tier_id="ga", quantity=10), now_ms=now_ms()
        )
        for _ in range(100):
            if feeds.known_available(SESSION, "ga") == 0:
                break
            await asyncio.sleep(0.01)
        assert feeds.known_available(SESSION, "ga") == 0
    assert feeds.known_available(SESSION, "ga") is None


async def test_the_sweeper_job_expires_lapsed_holds(rt):  # type: ignore[no-untyped-def]
    from boxoffice.jobs import expire_holds

    # given a hold that lapsed a second ago and nothing else touching the session
    ledger = rt.backends.ledger
    await ledger.load(small_session(), now_ms=now_ms())
    await ledger.hold(
        SESSION, HoldRequest("h1", "u1", 1, tier_id="ga", quantity=4), now_ms=now_ms() - 1000
    )
    # when the job runs
    released = await expire_holds(rt)
    # then the units are back
    assert released == 1
    counts = await ledger.counts(SESSION)
    assert counts["ga"].free == 10
    assert await expire_holds(rt) == 0
