"""The waiting room's rules: joining (limits, blacklist, risk), tickets and the position stream."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from boxoffice.backends.waiting_room import EntryStatus
from boxoffice.errors import Forbidden, NotFound, RateLimited, SoldOut
from boxoffice.models.blacklist import BlacklistKind
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.services import blacklist, waiting_room
from boxoffice.services.queue_admission import AdmissionTicker, QueueSchedule
from boxoffice.services.waiting_room import QueueTicket
from tests.helpers import make_user, viewer_for

EVENT = "ev-1"
RATE = 50


async def join(
    rt: Runtime,
    user_id: str,
    *,
    device_id: str | None = None,
    ip: str | None = "198.51.100.1",
    event_id: str = EVENT,
    now: float | None = None,
) -> QueueTicket:
    return await waiting_room.join_queue(
        db=rt.db,
        room=rt.backends.waiting_room,
        rate_limiter=rt.backends.rate_limiter,
        codes=rt.backends.codes,
        tokens=rt.queue_tokens,
        user_id=user_id,
        event_id=event_id,
        device_id=device_id if device_id is not None else f"dev-{user_id}",
        ip=ip,
        admit_per_second=RATE,
        now=now,
    )


async def status(rt: Runtime, user_id: str, now: float | None = None) -> QueueTicket | None:
    return await waiting_room.queue_status(
        room=rt.backends.waiting_room,
        tokens=rt.queue_tokens,
        user_id=user_id,
        event_id=EVENT,
        admit_per_second=RATE,
        now=now,
    )


async def admit(rt: Runtime, count: int, *, now: float | None = None) -> None:
    await rt.backends.waiting_room.admit(
        EVENT, count, now=time.time() if now is None else now, window_seconds=600
    )


async def test_joining_twice_keeps_one_place(rt: Runtime):
    # given an open line with two people
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    first = await join(rt, "u1")
    await join(rt, "u2")
    # when the first joins again
    again = await join(rt, "u1")
    # then the place is the same
    assert first == again
    assert (again.status, again.position, again.ahead) == (EntryStatus.WAITING, 1, 0)
    assert (await rt.backends.waiting_room.snapshot(EVENT)).waiting == 2


async def test_a_ticket_states_position_ahead_and_wait(rt: Runtime):
    # given 120 in line
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    await asyncio.gather(*(join(rt, f"u{i}") for i in range(120)))
    # when the first 10 are admitted
    await admit(rt, 10)
    # then everyone's ticket follows from its place, the watermark and the rate (50/s)
    for i in range(120):
        ticket = await status(rt, f"u{i}")
        assert ticket is not None
        if ticket.status is EntryStatus.ADMITTED:
            continue
        assert ticket.position is not None and ticket.ahead == ticket.position - 1
        assert ticket.estimated_wait_seconds == -(-ticket.ahead // RATE)
    last = max(
        [t for t in [await status(rt, f"u{i}") for i in range(120)] if t and t.position],
        key=lambda t: t.position or 0,
    )
    assert (last.position, last.ahead, last.estimated_wait_seconds) == (110, 109, 3)
    assert await status(rt, "stranger") is None


async def test_before_the_sale_a_ticket_has_no_place_yet(rt: Runtime):
    ticket = await join(rt, "early")
    assert ticket == QueueTicket(EVENT, EntryStatus.WAITING, None, None, None)
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    drawn = await status(rt, "early")
    assert drawn is not None and drawn.position == 1


async def test_an_admitted_user_gets_a_token_for_this_event(rt: Runtime):
    # given an admitted user
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    await join(rt, "u1")
    now = time.time()
    await admit(rt, 1, now=now)
    # when it asks for its status twice
    first = await status(rt, "u1")
    second = await status(rt, "u1")
    # then each answer carries a new token that enters checkout for this event, once
    assert first is not None and second is not None
    assert first.status is EntryStatus.ADMITTED and first.queue_token
    assert first.queue_token != second.queue_token
    assert first.expires_at is not None and first.expires_at <= datetime.fromtimestamp(
        now + 600, UTC
    )
    claims = await rt.queue_tokens.consume(
        first.queue_token, codes=rt.backends.codes, user_id="u1", event_id=EVENT
    )
    assert claims.event_id == EVENT
    # and joining again answers the same, admitted
    assert (await join(rt, "u1")).status is EntryStatus.ADMITTED


async def test_after_the_admission_window_the_ticket_is_expired(rt: Runtime):
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    await join(rt, "u1")
    now = time.time()
    await admit(rt, 1, now=now)
    # before the ticker marks it, the window's end already counts
    late = await status(rt, "u1", now=now + 601)
    assert late is not None and (late.status, late.queue_token) == (EntryStatus.EXPIRED, None)
    await rt.backends.waiting_room.expire(EVENT, now=now + 601)
    again = await join(rt, "u1", now=now + 700)
    assert again.status is EntryStatus.EXPIRED and again.queue_token is None


async def test_joins_are_rate_limited_per_user_device_and_ip(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(waiting_room, "USER_LIMIT", ("queue:join:user", 3, 60.0))
    monkeypatch.setattr(waiting_room, "DEVICE_LIMIT", ("queue:join:device", 4, 60.0))
    monkeypatch.setattr(waiting_room, "IP_LIMIT", ("queue:join:ip", 6, 60.0))
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    # a user: three attempts, then refused
    for _ in range(3):
        await join(rt, "u1", device_id="d1", ip="192.0.2.1")
    with pytest.raises(RateLimited) as caught:
        await join(rt, "u1", device_id="d-other", ip="192.0.2.99")
    assert caught.value.details["retryAfter"] >= 1
    # a device: four attempts across accounts, then refused
    await join(rt, "u2", device_id="d2", ip="192.0.2.2")
    await join(rt, "u3", device_id="d2", ip="192.0.2.3")
    await join(rt, "u2", device_id="d2", ip="192.0.2.4")
    await join(rt, "u3", device_id="d2", ip="192.0.2.5")
    with pytest.raises(RateLimited):
        await join(rt, "u4", device_id="d2", ip="192.0.2.6")
    # an IP: six attempts, then refused
    for i in range(6):
        await join(rt, f"n{i}", ip="203.0.113.50")
    with pytest.raises(RateLimited):
        await join(rt, "n9", ip="203.0.113.50")


async def test_blacklisted_users_devices_and_ips_are_refused(rt: Runtime):
    # given an operator's blacklist of a user, a device and an IP
    operator = await viewer_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    banned = await make_user(rt, "banned@example.com")
    for kind, value in (
        (BlacklistKind.USER, banned.id),
        (BlacklistKind.DEVICE, "bot-device"),
        (BlacklistKind.IP, "192.0.2.66"),
    ):
        await blacklist.add_entry(
            db=rt.db, codes=rt.backends.codes, viewer=operator, kind=kind, value=value
        )
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    # then each is refused, and nobody was placed
    for kwargs in (
        {"user_id": banned.id},
        {"user_id": "u1", "device_id": "bot-device"},
        {"user_id": "u2", "ip": "192.0.2.66"},
    ):
        with pytest.raises(Forbidden) as caught:
            await join(rt, **kwargs)  # type: ignore[arg-type]
        assert caught.value.details["reason"] == "BLACKLISTED"
    assert (await rt.backends.waiting_room.snapshot(EVENT)).waiting == 0
    # while a clean user joins
    assert (await join(rt, "u3")).position == 1


async def test_risky_joins_go_to_the_back_or_are_refused(rt: Runtime):
    # given, before the sale, a device used by five accounts and ten honest users
    verdicts: dict[str, str] = {}
    for user in ("f1", "f2", "f3", "f4", "f5"):
        try:
            await join(rt, user, device_id="farm")
            verdicts[user] = "joined"
        except Forbidden as exc:
            verdicts[user] = str(exc.details["reason"])
    honest = [f"h{i}" for i in range(10)]
    for user in honest:
        await join(rt, user)
    # then the fifth is refused
    assert verdicts == {
        "f1": "joined",
        "f2": "joined",
        "f3": "joined",
        "f4": "joined",
        "f5": "RISK",
    }
    # and when the sale opens, the third and fourth are drawn behind everyone else
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    places = {u: (await status(rt, u)).position for u in [*honest, "f1", "f2", "f3", "f4"]}  # type: ignore[union-attr]
    assert sorted([places["f3"], places["f4"]]) == [13, 14]  # type: ignore[list-item]


async def test_a_closed_line_answers_sold_out(rt: Runtime):
    # given one admitted and one waiting
    room = rt.backends.waiting_room
    await room.open(EVENT, os.urandom(32))
    await join(rt, "in")
    await join(rt, "out")
    await admit(rt, 1)
    # when the event sells out
    await room.close(EVENT)
    # then newcomers and the waiting are told SOLD_OUT, the admitted may still try
    with pytest.raises(SoldOut):
        await join(rt, "new")
    with pytest.raises(SoldOut):
        await status(rt, "out")
    admitted = await status(rt, "in")
    assert admitted is not None and admitted.queue_token


async def test_leaving_gives_up_the_place(rt: Runtime):
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    await join(rt, "a")
    await join(rt, "b")
    assert await waiting_room.leave_queue(
        room=rt.backends.waiting_room, user_id="a", event_id=EVENT
    )
    assert await status(rt, "a") is None
    assert (await status(rt, "b")).position == 2  # type: ignore[union-attr]  # a gap, not a jump
    assert (await join(rt, "a")).position == 3


async def collect(rt: Runtime, user_id: str, out: list[QueueTicket], ready: asyncio.Event) -> None:
    async for ticket in waiting_room.watch_position(
        room=rt.backends.waiting_room,
        broker=rt.backends.broker,
        tokens=rt.queue_tokens,
        user_id=user_id,
        event_id=EVENT,
        admit_per_second=RATE,
    ):
        out.append(ticket)
        ready.set()


def ticker_for(
    rt: Runtime, rate: int, opens_at: float, sold_out: bool = False, **options: Any
) -> AdmissionTicker:
    """The event's ticker; ``options`` go to ``AdmissionTicker`` (a clock, the draw's lead)."""
    schedule = QueueSchedule(EVENT, datetime.fromtimestamp(opens_at, UTC), rate, sold_out)

    async def schedules() -> list[QueueSchedule]:
        return [schedule]

    return AdmissionTicker(
        room=rt.backends.waiting_room,
        broker=rt.backends.broker,
        leases=rt.backends.leases,
        schedules=schedules,
        owner="test",
        **options,
    )


async def everyone_watching(
    rt: Runtime, users: list[str]
) -> tuple[dict[str, list[QueueTicket]], list[asyncio.Task[None]]]:
    """``users`` join and watch their position; returns once each has its first ticket."""
    for user in users:
        await join(rt, user)
    streams: dict[str, list[QueueTicket]] = {u: [] for u in users}
    readiness = {u: asyncio.Event() for u in users}
    tasks = [asyncio.create_task(collect(rt, u, streams[u], readiness[u])) for u in users]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readiness.values())), 10)
    return streams, tasks


async def test_positions_stream_down_to_admission(rt: Runtime):
    # given 60 arrivals before the sale, 12 of them watching their position
    users = [f"u{i:02d}" for i in range(60)]
    for user in users:
        await join(rt, user)
    watched = users[::5]
    streams: dict[str, list[QueueTicket]] = {u: [] for u in watched}
    readiness = {u: asyncio.Event() for u in watched}
    tasks = [asyncio.create_task(collect(rt, u, streams[u], readiness[u])) for u in watched]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in readiness.values())), 10)
    # when the sale opens and the ticker admits 7 per tick
    ticker = ticker_for(rt, rate=7, opens_at=time.time() - 1)
    ticks: list[float] = []
    for _ in range(20):
        before = time.time()
        await ticker.tick()
        ticks.append(before)
        await asyncio.sleep(0.02)
        if all(t.done() for t in tasks):
            break
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # then every ticket says when the line was as it says: a tick's time after the first
    for stream in streams.values():
        assert stream[0].as_of > 0
        for ticket in stream[1:]:
            assert any(abs(ticket.as_of - at) < 0.02 for at in ticks), (ticket, ticks)
    # then each stream starts without a place, only ever goes down, and ends ADMITTED with a token
    for user, stream in streams.items():
        assert stream[0].position is None
        positions = [t.position for t in stream[1:-1]]
        assert all(p is not None for p in positions), (user, stream)
        assert positions == sorted(positions, reverse=True)  # type: ignore[type-var]
        assert len(set(positions)) == len(positions)
        assert stream[-1].status is EntryStatus.ADMITTED and stream[-1].queue_token
        assert all(t.status is EntryStatus.WAITING for t in stream[:-1])


async def test_the_far_end_of_the_line_hears_less_often_and_the_front_every_refresh(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
):
    # given a line of 40, all watching (the draw decides who is at the end); the front is
    # 20 seconds of admissions (20 places at 1 a second) and hears about every 0.1 s, the
    # rest at most every 0.3 s
    monkeypatch.setattr(waiting_room, "NEAR_SECONDS", 20)
    monkeypatch.setattr(waiting_room, "NEAR_REFRESH_SECONDS", 0.1)
    monkeypatch.setattr(waiting_room, "FAR_REFRESH_SECONDS", 0.3)
    users = [f"u{i:02d}" for i in range(40)]
    streams, tasks = await everyone_watching(rt, users)
    # when the ticker admits one a tick, ticking every 30 ms
    ticker = ticker_for(rt, rate=1, opens_at=time.time() - 1)
    for _ in range(400):
        await ticker.tick()
        await asyncio.sleep(0.03)
        if all(t.done() for t in tasks):
            break
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    longest_far = longest_near = 0
    for stream in streams.values():
        waiting = [t for t in stream[1:] if t.status is EntryStatus.WAITING]
        far = [t for t in waiting if t.position is not None and t.position > 20]
        near = [t for t in waiting if t.position is not None and t.position <= 20]
        longest_far, longest_near = max(longest_far, len(far)), max(longest_near, len(near))
        # then far back, updates come about 0.3 s apart (a tick half a group early counts)
        # (in milliseconds, as the broadcast carries them: 0.290 s apart is 0.29 s apart)
        spacing_ms = round((0.3 - 0.3 / waiting_room.FAR_GROUPS / 2) * 1000)
        gaps_ms = [round((b.as_of - a.as_of) * 1000) for a, b in itertools.pairwise(far)]
        assert all(gap >= spacing_ms for gap in gaps_ms), far
        # and near the front about every 0.1 s (a tenth early counts), not every 30 ms tick,
        # only ever down
        positions = [t.position for t in near]
        assert positions == sorted(positions, reverse=True), positions
        gaps = [b.as_of - a.as_of for a, b in itertools.pairwise(near)]
        assert all(0.09 <= gap < 0.3 for gap in gaps), gaps
        # and admission comes at once, with its token, however recently the place was told
        assert stream[-1].status is EntryStatus.ADMITTED and stream[-1].queue_token
    assert longest_far >= 2  # the back of the line was far long enough to be throttled
    assert longest_near >= 3  # and the front long enough to hear several times


async def test_at_the_draw_the_far_end_hears_its_place_in_groups(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
):
    # given 40 in the pre-queue, all watching; the front is 5 places (5 seconds at 1 a
    # second); far places hear every 100 s, so their drawn places come in 5 groups 20 s apart
    monkeypatch.setattr(waiting_room, "NEAR_SECONDS", 5)
    monkeypatch.setattr(waiting_room, "FAR_REFRESH_SECONDS", 100.0)
    monkeypatch.setattr(waiting_room, "FAR_GROUPS", 5)
    users = [f"u{i:02d}" for i in range(40)]
    streams, tasks = await everyone_watching(rt, users)
    # when the line is drawn (its sale an hour away: nobody admitted, no place moves) and
    # the ticker ticks every 20 s of its clock
    t0 = time.time()
    now = [t0]
    ticker = ticker_for(
        rt, rate=1, opens_at=t0 + 3600, draw_ahead_seconds=7200, clock=lambda: now[0]
    )
    heard: list[set[str]] = []
    for group in range(5):
        now[0] = t0 + 20 * group
        await ticker.tick()
        await asyncio.sleep(0.2)
        heard.append({u for u, stream in streams.items() if len(stream) > 1})
    try:
        seqs = {u: (await rt.backends.waiting_room.status(EVENT, u)).seq for u in users}  # type: ignore[union-attr]
        # then the front and group 0 hear at the draw, and each later group on its tick
        for group in range(5):
            expected = {u for u, seq in seqs.items() if seq <= 5 or seq % 5 <= group}  # type: ignore[operator]
            assert heard[group] == expected, group
        # and each hears its place once, as of its group's tick
        for user, stream in streams.items():
            seq = seqs[user]
            assert [t.position for t in stream] == [None, seq], (user, stream)
            group = 0 if seq <= 5 else seq % 5  # type: ignore[operator]
            assert stream[1].as_of == pytest.approx(t0 + 20 * group, abs=0.01)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_the_stream_ends_with_sold_out_when_the_line_closes(rt: Runtime):
    # given a waiting watcher
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    await join(rt, "u1")
    await join(rt, "u2")
    stream: list[QueueTicket] = []
    ready = asyncio.Event()
    task = asyncio.create_task(collect(rt, "u2", stream, ready))
    await asyncio.wait_for(ready.wait(), 10)
    # when the ticker learns the event sold out
    await ticker_for(rt, rate=1, opens_at=time.time() - 1, sold_out=True).tick()
    # then the stream ends with SOLD_OUT
    with pytest.raises(SoldOut):
        await asyncio.wait_for(task, 10)
    assert [t.position for t in stream] == [2]


async def test_at_a_sell_out_the_far_end_hears_it_in_groups_and_not_if_it_reopened(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
):
    # given 30 watchers of an open line; the front is 5 places (5 seconds at 1 a second), the
    # rest hears a close in 5 groups (place mod 5) over 1 s of the ticker's clock
    monkeypatch.setattr(waiting_room, "NEAR_SECONDS", 5)
    monkeypatch.setattr(waiting_room, "FAR_GROUPS", 5)
    monkeypatch.setattr(waiting_room, "CLOSE_SPREAD_SECONDS", 1.0)
    await rt.backends.waiting_room.open(EVENT, os.urandom(32))
    users = [f"u{i:02d}" for i in range(30)]
    streams, tasks = await everyone_watching(rt, users)
    seqs = {u: stream[0].position for u, stream in streams.items()}
    t0 = time.time() + 3600
    now = [t0]
    closing = ticker_for(rt, rate=1, opens_at=t0 + 7200, sold_out=True, clock=lambda: now[0])
    # (half a place a tick: reopening lets nobody in, so no place moves)
    reopening = ticker_for(rt, rate=1, opens_at=t0 - 1, clock=lambda: now[0], tick_seconds=0.5)

    async def ended_after(ticker: AdmissionTicker, at: float) -> set[str]:
        now[0] = t0 + at
        await ticker.tick()
        await asyncio.sleep(0.3)
        return {u for u, task in zip(users, tasks, strict=True) if task.done()}

    def far_group(user: str) -> int | None:
        seq = seqs[user]
        assert seq is not None
        return None if seq <= 5 else seq % 5

    try:
        # when the line closes: the front and group 0 hear at once
        assert await ended_after(closing, 0.0) == {u for u in users if far_group(u) in (None, 0)}
        # when it reopens before group 1 was due, then closes again 0.1 s later: group 1
        # waits 0.2 s from the new close, not from the first one
        await ended_after(reopening, 0.1)
        second = 0.2
        assert await ended_after(closing, second) == {u for u in users if far_group(u) in (None, 0)}
        # then each group hears on its tick
        for group in range(1, 5):
            ended = await ended_after(closing, second + 0.2 * group + 0.01)
            assert ended == {u for u in users if (far_group(u) or 0) <= group}, group
        # and every stream ended with SOLD_OUT, having told only its place
        for user, task in zip(users, tasks, strict=True):
            assert isinstance(task.exception(), SoldOut)
            assert [t.position for t in streams[user]] == [seqs[user]]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_watching_without_an_entry_is_not_found(rt: Runtime):
    with pytest.raises(NotFound):
        await collect(rt, "nobody", [], asyncio.Event())
