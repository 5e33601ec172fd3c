"""Conformance of the waiting room port, run against the memory and the Redis adapter."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from boxoffice.backends import Backends, open_backends
from boxoffice.backends.waiting_room import (
    EntryStatus,
    Lane,
    QueueClosed,
    QueueState,
    WaitingRoom,
    pre_queue_order,
)
from tests.services import RedisServer

EVENT = "ev-1"
NOW = 1_700_000_000.0
WINDOW = 300.0


@pytest.fixture(params=["memory", "redis"])
def backends_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def backends(backends_url: str | None) -> AsyncIterator[Backends]:
    opened = await open_backends(backends_url)
    if opened.redis is not None:
        await opened.redis.flushdb()
    yield opened
    await opened.close()


@pytest.fixture
def room(backends: Backends) -> WaitingRoom:
    return backends.waiting_room


async def join_all(room: WaitingRoom, users: list[str], event: str = EVENT) -> None:
    for i, user in enumerate(users):
        await room.join(event, user, now=NOW + i)


async def test_one_entry_per_user(room: WaitingRoom):
    # given an open line
    await room.open(EVENT, os.urandom(32))
    # when one user joins many times at once
    results = await asyncio.gather(*(room.join(EVENT, "u1", now=NOW) for _ in range(50)))
    # then exactly one call created the entry and every call sees the same place
    assert [created for _, created in results].count(True) == 1
    assert {entry.seq for entry, _ in results} == {1}
    again, created = await room.join(EVENT, "u1", now=NOW + 60)
    assert not created and again.seq == 1 and again.status is EntryStatus.WAITING
    assert (await room.snapshot(EVENT)).waiting == 1


async def test_concurrent_joins_get_distinct_places(room: WaitingRoom):
    # given an open line
    await room.open(EVENT, os.urandom(32))
    # when 2,000 users join concurrently
    users = [f"u{i}" for i in range(2000)]
    results = await asyncio.gather(*(room.join(EVENT, u, now=NOW) for u in users))
    # then each has its own place and the places are exactly 1..2000
    seqs = [entry.seq for entry, _ in results]
    assert sorted(s for s in seqs if s is not None) == list(range(1, 2001))
    snapshot = await room.snapshot(EVENT)
    assert (snapshot.waiting, snapshot.last_seq, snapshot.pre_queue) == (2000, 2000, 0)


async def test_pre_queue_is_shuffled_at_opening_and_ahead_of_later_arrivals(room: WaitingRoom):
    # given 300 arrivals before the sale opens, without places yet
    early = [f"early{i:03d}" for i in range(300)]
    await join_all(room, early)
    entry = await room.status(EVENT, early[0])
    assert entry is not None and entry.seq is None and entry.position is None
    assert (await room.snapshot(EVENT)).pre_queue == 300
    # when the sale opens and more people arrive
    seed = os.urandom(32)
    snapshot = await room.open(EVENT, seed)
    late = [f"late{i:03d}" for i in range(20)]
    await join_all(room, late)
    # then the early ones hold places 1..300 in a drawn order that is not the arrival order
    places = {u: (await room.status(EVENT, u)).seq for u in early + late}  # type: ignore[union-attr]
    drawn = sorted(early, key=lambda u: places[u])
    assert sorted(places[u] for u in early) == list(range(1, 301))  # type: ignore[type-var]
    assert drawn != early
    assert drawn == pre_queue_order(seed, ((u, Lane.NORMAL) for u in early))
    # and the later ones follow, first come first served
    assert [places[u] for u in late] == list(range(301, 321))
    assert (snapshot.state, snapshot.pre_queue, snapshot.waiting) == (QueueState.OPEN, 0, 300)


async def test_back_lane_is_drawn_behind_the_pre_queue(room: WaitingRoom):
    # given risky arrivals among normal ones before the sale
    for i in range(40):
        lane = Lane.BACK if i % 4 == 0 else Lane.NORMAL
        await room.join(EVENT, f"u{i:02d}", now=NOW + i, lane=lane)
    # when the sale opens
    await room.open(EVENT, os.urandom(32))
    # then every NORMAL entry is ahead of every BACK entry
    seqs = {f"u{i:02d}": (await room.status(EVENT, f"u{i:02d}")).seq for i in range(40)}  # type: ignore[union-attr]
    back = [s for u, s in seqs.items() if int(u[1:]) % 4 == 0]
    normal = [s for u, s in seqs.items() if int(u[1:]) % 4 != 0]
    assert max(normal) < min(back)  # type: ignore[type-var]


def test_the_draw_is_uniform():
    # given five entries drawn 2,000 times with fresh seeds
    users = [(f"u{i}", Lane.NORMAL) for i in range(5)]
    firsts = Counter(pre_queue_order(os.urandom(32), users)[0] for _ in range(2000))
    # then each comes first about a fifth of the time (±5.6 standard deviations)
    assert set(firsts) == {u for u, _ in users}
    assert all(300 < n < 500 for n in firsts.values()), firsts


async def test_admission_is_in_order(room: WaitingRoom):
    # given ten in line
    await room.open(EVENT, os.urandom(32))
    users = [f"u{i}" for i in range(10)]
    await join_all(room, users)
    # when three then four are admitted
    first = await room.admit(EVENT, 3, now=NOW, window_seconds=WINDOW)
    second = await room.admit(EVENT, 4, now=NOW, window_seconds=WINDOW)
    # then they come in line order and the watermark follows
    assert first.admitted == (("u0", 1), ("u1", 2), ("u2", 3)) and first.watermark == 3
    assert [u for u, _ in second.admitted] == users[3:7] and second.watermark == 7
    admitted = await room.status(EVENT, "u4")
    assert admitted is not None and admitted.status is EntryStatus.ADMITTED
    assert admitted.admitted_until == pytest.approx(NOW + WINDOW)
    waiting = await room.status(EVENT, "u9")
    assert waiting is not None and (waiting.position, waiting.watermark) == (3, 7)
    snapshot = await room.snapshot(EVENT)
    assert (snapshot.waiting, snapshot.admitted) == (3, 7)


async def test_concurrent_admission_admits_each_entry_exactly_once(room: WaitingRoom):
    # given 500 in line
    await room.open(EVENT, os.urandom(32))
    users = [f"u{i}" for i in range(500)]
    await asyncio.gather(*(room.join(EVENT, u, now=NOW) for u in users))
    # when 60 tasks admit 10 each at the same time
    results = await asyncio.gather(
        *(room.admit(EVENT, 10, now=NOW, window_seconds=WINDOW) for _ in range(60))
    )
    # then everyone is admitted exactly once, each batch in line order
    admitted = [pair for result in results for pair in result.admitted]
    assert sorted(u for u, _ in admitted) == sorted(users)
    assert sorted(seq for _, seq in admitted) == list(range(1, 501))
    for result in results:
        seqs = [seq for _, seq in result.admitted]
        assert seqs == sorted(seqs)
    assert max(r.watermark for r in results) == 500
    assert (await room.snapshot(EVENT)).admitted == 500


async def test_positions_never_increase(room: WaitingRoom):
    # given 60 in line
    await room.open(EVENT, os.urandom(32))
    users = [f"u{i}" for i in range(60)]
    await join_all(room, users)
    last: dict[str, int] = {}
    watermarks = [0]
    for step in range(12):
        # when some leave, some join at the back and a few are admitted
        await room.leave(EVENT, users[(step * 7) % 60])
        await room.join(EVENT, f"late{step}", now=NOW + 100 + step)
        admission = await room.admit(EVENT, 4, now=NOW, window_seconds=WINDOW)
        watermarks.append(admission.watermark)
        # then no waiting entry's position ever grows
        for user in users:
            entry = await room.status(EVENT, user)
            if entry is None or entry.position is None:
                continue
            assert entry.seq is not None
            assert entry.position == entry.seq - entry.watermark
            assert entry.position <= last.get(user, entry.position)
            last[user] = entry.position
    assert watermarks == sorted(watermarks)
    assert watermarks[-1] > 0


async def test_leave_removes_a_waiting_entry_only(room: WaitingRoom):
    # given three in line, the first admitted
    await room.open(EVENT, os.urandom(32))
    await join_all(room, ["a", "b", "c"])
    await room.admit(EVENT, 1, now=NOW, window_seconds=WINDOW)
    # when b leaves, and a (admitted) and a stranger try to
    assert await room.leave(EVENT, "b")
    assert not await room.leave(EVENT, "a")
    assert not await room.leave(EVENT, "nobody")
    # then b's place is a gap that admission passes over
    assert await room.status(EVENT, "b") is None
    admission = await room.admit(EVENT, 1, now=NOW, window_seconds=WINDOW)
    assert admission.admitted == (("c", 3),) and admission.watermark == 3
    # and b joining again goes to the back
    entry, created = await room.join(EVENT, "b", now=NOW + 10)
    assert created and entry.seq == 4


async def test_leaving_the_pre_queue(room: WaitingRoom):
    # given two in the pre-queue
    await join_all(room, ["a", "b"])
    # when one leaves before the draw
    assert await room.leave(EVENT, "a")
    await room.open(EVENT, os.urandom(32))
    # then only the other is drawn
    assert await room.status(EVENT, "a") is None
    assert (await room.status(EVENT, "b")).seq == 1  # type: ignore[union-attr]


async def test_nothing_is_admitted_before_opening(room: WaitingRoom):
    await join_all(room, ["a", "b"])
    admission = await room.admit(EVENT, 10, now=NOW, window_seconds=WINDOW)
    assert admission.admitted == () and admission.watermark == 0
    assert (await room.snapshot(EVENT)).state is QueueState.PENDING


async def test_closed_line_refuses_newcomers_and_admits_nobody(room: WaitingRoom):
    # given two in an open line
    await room.open(EVENT, os.urandom(32))
    await join_all(room, ["a", "b"])
    # when the event sells out
    snapshot = await room.close(EVENT)
    # then newcomers are refused, existing entries stay, nobody is admitted
    assert snapshot.state is QueueState.CLOSED and snapshot.waiting == 2
    with pytest.raises(QueueClosed):
        await room.join(EVENT, "c", now=NOW)
    entry, created = await room.join(EVENT, "a", now=NOW)
    assert not created and entry.state is QueueState.CLOSED
    assert (await room.admit(EVENT, 5, now=NOW, window_seconds=WINDOW)).admitted == ()
    # and reopening resumes where it stopped
    assert (await room.open(EVENT, os.urandom(32))).state is QueueState.OPEN
    assert [
        u for u, _ in (await room.admit(EVENT, 5, now=NOW, window_seconds=WINDOW)).admitted
    ] == [
        "a",
        "b",
    ]


async def test_admission_windows_expire(room: WaitingRoom):
    # given two admitted at NOW for 300 s, and one admitted later
    await room.open(EVENT, os.urandom(32))
    await join_all(room, ["a", "b", "c"])
    await room.admit(EVENT, 2, now=NOW, window_seconds=WINDOW)
    await room.admit(EVENT, 1, now=NOW + 100, window_seconds=WINDOW)
    # when time passes the first window
    assert await room.expire(EVENT, now=NOW + WINDOW - 1) == 0
    assert await room.expire(EVENT, now=NOW + WINDOW) == 2
    # then those two are EXPIRED, for good, and the third is still ADMITTED
    entry = await room.status(EVENT, "a")
    assert entry is not None and entry.status is EntryStatus.EXPIRED
    again, created = await room.join(EVENT, "a", now=NOW + 400)
    assert not created and again.status is EntryStatus.EXPIRED
    assert not await room.leave(EVENT, "a")
    assert (await room.status(EVENT, "c")).status is EntryStatus.ADMITTED  # type: ignore[union-attr]
    snapshot = await room.snapshot(EVENT)
    assert (snapshot.admitted, snapshot.expired) == (1, 2)


async def test_events_are_independent_and_can_be_dropped(room: WaitingRoom):
    # given two events' lines
    await room.open("ev-a", os.urandom(32))
    await room.join("ev-a", "u", now=NOW)
    await room.join("ev-b", "u", now=NOW)
    # then one user has an entry in each, each with its own state
    assert (await room.status("ev-a", "u")).seq == 1  # type: ignore[union-attr]
    assert (await room.status("ev-b", "u")).seq is None  # type: ignore[union-attr]
    # when one line is dropped
    await room.drop("ev-a")
    # then it is gone and the other is untouched
    assert await room.status("ev-a", "u") is None
    assert (await room.snapshot("ev-a")).state is QueueState.PENDING
    assert (await room.snapshot("ev-b")).pre_queue == 1


async def test_a_crowd_of_subscribers_rides_one_pipelined_connection(redis_server: RedisServer):
    # given Redis backends and a line of 400 users that opens (every subscriber re-reads its
    # entry at that moment, and each subscription holds a slot)
    backends = await open_backends(redis_server.url)
    try:
        assert backends.redis is not None
        connections_before = len(await backends.redis.client_list())
        room, slots = backends.waiting_room, backends.slots
        users = [f"crowd-{i}" for i in range(400)]
        await asyncio.gather(*(room.join("ev-crowd", u, now=NOW) for u in users))
        await room.open("ev-crowd", os.urandom(32))
        # when all of them read their entry and take and give back a slot at once
        entries = await asyncio.gather(*(room.status("ev-crowd", u) for u in users))
        taken = await asyncio.gather(
            *(slots.acquire(f"crowd:{u}", "h", limit=1, lease_seconds=30) for u in users)
        )
        await asyncio.gather(*(slots.release(f"crowd:{u}", "h") for u in users))
        # then every call was answered ...
        assert sorted(e.seq for e in entries if e is not None) == list(range(1, 401))
        assert all(taken)
        assert await slots.count("crowd:crowd-0") == 0
        # ... over one more connection (the pipelining client's), not one pooled redis-py
        # connection per concurrent call: a crowd of thousands would wait for the pool's 64
        assert len(await backends.redis.client_list()) <= connections_before + 1
    finally:
        await backends.close()
