"""The admission ticker: one process admits, at the event's rate, one broadcast per tick."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest

from boxoffice.backends.broker import channels
from boxoffice.backends.waiting_room import EntryStatus, QueueState
from boxoffice.clock import next_start
from boxoffice.runtime import Runtime
from boxoffice.services.queue_admission import LEASE, AdmissionTicker, QueueSchedule
from boxoffice.services.waiting_room import QueueBroadcast

T0 = 1_900_000_000.0


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def schedule(
    event_id: str = "ev", rate: int = 10, opens_at: float = T0, sold_out: bool = False
) -> QueueSchedule:
    return QueueSchedule(event_id, datetime.fromtimestamp(opens_at, UTC), rate, sold_out)


def make_ticker(
    rt: Runtime,
    schedules: list[QueueSchedule],
    *,
    owner: str = "p1",
    clock: Clock | None = None,
    tick_seconds: float = 1.0,
) -> AdmissionTicker:
    async def source() -> list[QueueSchedule]:
        return schedules

    return AdmissionTicker(
        room=rt.backends.waiting_room,
        broker=rt.backends.broker,
        leases=rt.backends.leases,
        schedules=source,
        owner=owner,
        tick_seconds=tick_seconds,
        admission_window_seconds=60,
        clock=clock or Clock(),
    )


async def fill(rt: Runtime, count: int, event_id: str = "ev") -> list[str]:
    users = [f"u{i:04d}" for i in range(count)]
    await rt.backends.waiting_room.open(event_id, os.urandom(32))
    for user in users:
        await rt.backends.waiting_room.join(event_id, user, now=T0)
    return users


@contextlib.asynccontextmanager
async def listening(rt: Runtime, event_id: str) -> AsyncIterator[list[str]]:
    """Collect the event's broadcasts while the block runs."""
    received: list[str] = []
    subscribed = asyncio.Event()

    async def listen() -> None:
        async with rt.backends.broker.subscribe(channels.queue(event_id)) as messages:
            subscribed.set()
            async for message in messages:
                received.append(message)

    task = asyncio.create_task(listen())
    await asyncio.wait_for(subscribed.wait(), 5)
    await asyncio.sleep(0.05)
    try:
        yield received
    finally:
        await asyncio.sleep(0.1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_only_the_lease_holder_admits(rt: Runtime):
    # given 100 in line and two processes' tickers
    users = await fill(rt, 100)
    first = make_ticker(rt, [schedule(rate=10)], owner="p1")
    second = make_ticker(rt, [schedule(rate=10)], owner="p2")
    admitted: list[str] = []
    # when both run five rounds at the same time
    for _ in range(5):
        results = await asyncio.gather(first.run_once(), second.run_once())
        # then in each round exactly one ticks, always the same one
        ran = [r for r in results if r is not None]
        assert len(ran) == 1
        admitted.extend(u for u, _ in ran[0][0].admitted)
    holder = await rt.backends.leases.holder(LEASE)
    assert holder in ("p1", "p2")
    # and 10 per round were admitted in line order, each once
    assert admitted == users[:50]


async def test_the_rate_is_respected_per_tick(rt: Runtime):
    # given 100 in line and a rate of 7 per second, ticking every second
    users = await fill(rt, 100)
    ticker = make_ticker(rt, [schedule(rate=7)])
    # when it ticks until the line is empty
    per_tick = []
    order: list[str] = []
    for _ in range(16):
        (report,) = await ticker.tick()
        per_tick.append(len(report.admitted))
        order.extend(u for u, _ in report.admitted)
    # then each tick admitted 7 (the rest at the end), in line order
    assert per_tick == [7] * 14 + [2, 0]
    assert order == users


async def test_fractional_rates_carry_over(rt: Runtime):
    # given a rate of 5 per second ticking every 0.5 s (2.5 per tick)
    await fill(rt, 100)
    ticker = make_ticker(rt, [schedule(rate=5)], tick_seconds=0.5)
    per_tick = [len((await ticker.tick())[0].admitted) for _ in range(8)]
    # then two and three alternate: 5 per second
    assert sum(per_tick) == 20
    assert set(per_tick) == {2, 3}


async def test_one_broadcast_per_tick_per_event(rt: Runtime):
    # given two events with people in line
    await fill(rt, 30, "ev-a")
    await fill(rt, 30, "ev-b")
    ticker = make_ticker(rt, [schedule("ev-a", rate=4), schedule("ev-b", rate=6)])
    # when the ticker ticks three times
    async with listening(rt, "ev-a") as on_a, listening(rt, "ev-b") as on_b:
        for _ in range(3):
            await ticker.tick()
    # then each event got exactly three messages carrying its rising watermark
    assert len(on_a) == 3 and len(on_b) == 3
    ticks_a = [QueueBroadcast.from_json(m) for m in on_a]
    ticks_b = [QueueBroadcast.from_json(m) for m in on_b]
    assert [t.watermark for t in ticks_a] == [4, 8, 12]
    assert [t.watermark for t in ticks_b] == [6, 12, 18]
    assert {t.event_id for t in ticks_a} == {"ev-a"}
    assert orjson.loads(on_a[0]) == {
        "v": 1,
        "eventId": "ev-a",
        "state": "OPEN",
        "watermark": 4,
        "admitPerSecond": 4,
        "at": round(T0 * 1000),
    }


async def test_the_line_is_drawn_a_tick_before_the_sale_and_admits_from_its_start(rt: Runtime):
    # given arrivals before the sale
    room = rt.backends.waiting_room
    clock = Clock(T0 - 10)
    for i in range(5):
        await room.join("ev", f"early{i}", now=clock.now)
    ticker = make_ticker(rt, [schedule(rate=3, opens_at=T0)], clock=clock)
    # when the ticker ticks well before the sale starts
    (report,) = await ticker.tick()
    # then nothing opens and nobody is admitted
    assert (report.state, report.admitted) == (QueueState.PENDING, ())
    # when it ticks one tick before the start, and somebody else comes after that
    clock.now = T0 - 1
    (report,) = await ticker.tick()
    await room.join("ev", "late", now=clock.now)
    # then the early arrivals are drawn (places 1-5) but nobody is let in before the sale
    assert (report.state, report.admitted, report.watermark) == (QueueState.OPEN, (), 0)
    seqs = {(await room.status("ev", f"early{i}")).seq for i in range(5)}  # type: ignore[union-attr]
    assert seqs == {1, 2, 3, 4, 5}
    assert (await room.status("ev", "late")).seq == 6  # type: ignore[union-attr]
    # when the sale starts
    clock.now = T0
    (report,) = await ticker.tick()
    # then three of the early arrivals are in, in drawn order
    assert report.state is QueueState.OPEN
    assert {u for u, _ in report.admitted} <= {f"early{i}" for i in range(5)}
    assert [seq for _, seq in report.admitted] == [1, 2, 3]


async def test_a_fast_ticker_still_draws_the_line_a_second_before_the_sale(rt: Runtime):
    # given a ticker ticking every 0.2 s and an arrival before the sale
    room = rt.backends.waiting_room
    clock = Clock(T0 - 10)
    await room.join("ev", "early", now=clock.now)
    ticker = make_ticker(rt, [schedule(rate=3, opens_at=T0)], clock=clock, tick_seconds=0.2)
    # when it ticks 1.2 s before the start, then the line is not drawn yet
    clock.now = T0 - 1.2
    (report,) = await ticker.tick()
    assert report.state is QueueState.PENDING
    # when it ticks a second before, then it is (the draw's wake-up of every waiting
    # screen is over before the first buyer may hold, not in the same fifth of a second)
    clock.now = T0 - 1.0
    (report,) = await ticker.tick()
    assert (report.state, report.admitted) == (QueueState.OPEN, ())


def test_ticks_start_a_tick_apart_whatever_a_tick_takes():
    # a tick that took 0.3 s of a 1 s period waits 0.7 s; one that overran waits a tenth
    assert next_start(10.0, 1.0, 10.3) == pytest.approx(0.7)
    assert next_start(10.0, 0.2, 10.5) == pytest.approx(0.02)


async def test_a_drawn_line_waits_for_a_sale_moved_later(rt: Runtime):
    # given a line drawn a tick before the sale
    room = rt.backends.waiting_room
    clock = Clock(T0 - 1)
    await room.join("ev", "early", now=T0 - 10)
    schedules = [schedule(rate=3, opens_at=T0)]
    ticker = make_ticker(rt, schedules, clock=clock)
    await ticker.tick()
    # when the organizer moves the sale an hour later and the old start passes
    schedules[0] = schedule(rate=3, opens_at=T0 + 3600)
    clock.now = T0 + 5
    (report,) = await ticker.tick()
    # then the line stays drawn and nobody is let in before the new start
    assert (report.state, report.admitted) == (QueueState.OPEN, ())
    # when the new start comes
    clock.now = T0 + 3600
    (report,) = await ticker.tick()
    # then admission begins
    assert [u for u, _ in report.admitted] == ["early"]


async def test_a_sold_out_event_stops_admitting(rt: Runtime):
    # given people in line
    await fill(rt, 10)
    # when the schedule says the event is sold out
    (report,) = await make_ticker(rt, [schedule(rate=5, sold_out=True)]).tick()
    # then the line closes and nobody is admitted
    assert (report.state, report.admitted) == (QueueState.CLOSED, ())
    assert (await rt.backends.waiting_room.snapshot("ev")).state is QueueState.CLOSED


async def test_admission_windows_expire_on_ticks(rt: Runtime):
    # given two admitted at T0 with a 60 s window
    await fill(rt, 2)
    clock = Clock(T0)
    ticker = make_ticker(rt, [schedule(rate=2)], clock=clock)
    await ticker.tick()
    # when a tick runs after the window
    clock.now = T0 + 61
    (report,) = await ticker.tick()
    # then both expired
    assert report.expired == 2
    entry = await rt.backends.waiting_room.status("ev", "u0000")
    assert entry is not None and entry.status is EntryStatus.EXPIRED


async def stop_within(task: asyncio.Task[None], *, seconds: float) -> None:
    """Cancel ``task`` and wait for it, at most ``seconds``: a loop that will not stop fails
    the test instead of hanging it. A cancellation that got lost (Python 3.11's ``wait_for``,
    which the Redis connection pool uses, can swallow one) is repeated every 2 s."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not task.done():
        assert asyncio.get_running_loop().time() < deadline, "the ticker did not stop"
        task.cancel()
        await asyncio.wait({task}, timeout=2.0)
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


async def test_the_running_loop_admits_and_gives_up_the_lease(rt: Runtime):
    # given 30 in line and a ticker running every 10 ms at 10 per tick
    await fill(rt, 30)
    ticker = make_ticker(rt, [schedule(rate=1000)], tick_seconds=0.01)
    task = asyncio.create_task(ticker.run())
    # when the line empties
    for _ in range(500):
        if (await rt.backends.waiting_room.snapshot("ev")).waiting == 0:
            break
        await asyncio.sleep(0.01)
    await stop_within(task, seconds=10)
    # then everyone was admitted and the lease is free for another process
    assert (await rt.backends.waiting_room.snapshot("ev")).admitted == 30
    assert await rt.backends.leases.holder(LEASE) is None
