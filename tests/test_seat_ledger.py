"""The seat ledger's conformance suite: every case runs against the memory and the Redis
adapter, including a Hypothesis state machine that drives random operations and checks that
sold + held + free + blocked = capacity and that no seat is in two holds."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from boxoffice.backends import Backends, open_backends
from boxoffice.backends.broker import channels
from boxoffice.backends.seat_ledger import (
    HoldRequest,
    HoldState,
    SeatLedger,
    SeatState,
    Taken,
)
from boxoffice.backends.seat_ledger.memory import MemorySeatLedger
from boxoffice.backends.seat_ledger.redis import RedisSeatLedger
from boxoffice.errors import BadUserInput, HoldExpired, HoldNotFound, SeatUnavailable, SoldOut
from tests.ledger_specs import SESSION, seat_id, small_session
from tests.services import RedisServer

NOW = 1_800_000_000_000
TTL = 120_000
CAPACITY = {"ga": 10, "front": 12, "back": 4}


def make_ledger(backends: Backends) -> SeatLedger:
    if backends.redis is not None:
        return RedisSeatLedger(backends.redis)
    return MemorySeatLedger(backends.broker)


@pytest.fixture(params=["memory", "redis"])
def ledger_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def backends(ledger_url: str | None) -> AsyncIterator[Backends]:
    opened = await open_backends(ledger_url)
    if opened.redis is not None:
        await opened.redis.flushdb()
    yield opened
    await opened.close()


@pytest.fixture
async def ledger(backends: Backends) -> SeatLedger:
    ledger = make_ledger(backends)
    await ledger.load(small_session(), now_ms=NOW)
    return ledger


def req(hold_id: str, user: str = "u1", **kwargs: Any) -> HoldRequest:
    return HoldRequest(hold_id=hold_id, user_id=user, ttl_ms=kwargs.pop("ttl_ms", TTL), **kwargs)


async def assert_balanced(ledger: SeatLedger) -> None:
    counts = await ledger.counts(SESSION)
    for tier, c in counts.items():
        assert c.free + c.held + c.sold + c.blocked == CAPACITY[tier], (tier, c)
        assert min(c.free, c.held, c.sold, c.blocked) >= 0, (tier, c)


async def test_load_gives_a_full_snapshot(ledger: SeatLedger):
    snap = await ledger.snapshot(SESSION, now_ms=NOW)
    assert snap.available == {"ga": 10, "front": 12, "back": 3}
    assert snap.seats[seat_id("B", 1, 4)] == SeatState.BLOCKED
    assert sum(1 for s in snap.seats.values() if s == SeatState.AVAILABLE) == 15
    assert snap.version > 0
    await assert_balanced(ledger)


async def test_chosen_seats_are_all_or_nothing(ledger: SeatLedger):
    first = await ledger.hold(
        SESSION, req("h1", seat_ids=(seat_id("A", 1, 1), seat_id("A", 1, 2))), now_ms=NOW
    )
    assert set(first.seats) == {seat_id("A", 1, 1), seat_id("A", 1, 2)}
    assert first.units == {"front": 2}
    with pytest.raises(SeatUnavailable) as refused:
        await ledger.hold(
            SESSION, req("h2", "u2", seat_ids=(seat_id("A", 1, 2), seat_id("A", 1, 3))), now_ms=NOW
        )
    assert refused.value.details["seats"] == [seat_id("A", 1, 2)]
    snap = await ledger.snapshot(SESSION, now_ms=NOW)
    assert snap.seats[seat_id("A", 1, 3)] == SeatState.AVAILABLE
    assert snap.available["front"] == 10
    with pytest.raises(BadUserInput):
        await ledger.hold(SESSION, req("h3", seat_ids=("nope",)), now_ms=NOW)
    with pytest.raises(SeatUnavailable):
        await ledger.hold(SESSION, req("h4", seat_ids=(seat_id("B", 1, 4),)), now_ms=NOW)
    await assert_balanced(ledger)


async def test_general_admission_counts_down_to_sold_out(ledger: SeatLedger):
    await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=7), now_ms=NOW)
    with pytest.raises(SoldOut) as short:
        await ledger.hold(SESSION, req("h2", tier_id="ga", quantity=4), now_ms=NOW)
    assert short.value.details["available"] == 3
    await ledger.hold(SESSION, req("h3", tier_id="ga", quantity=3), now_ms=NOW)
    with pytest.raises(SoldOut) as gone:
        await ledger.hold(SESSION, req("h4", tier_id="ga", quantity=1), now_ms=NOW)
    assert gone.value.details["available"] == 0
    with pytest.raises(BadUserInput):
        await ledger.hold(SESSION, req("h5", tier_id="ga", quantity=0), now_ms=NOW)
    await assert_balanced(ledger)


async def test_best_available_takes_adjacent_seats_nearest_the_centre(ledger: SeatLedger):
    # row 1 and row 2 are equally far from the section centre (y 1.5); in each row the runs
    # 2-4 and 3-5 tie around x 3.5: the earlier row and the leftmost run win
    hold = await ledger.hold(SESSION, req("h1", tier_id="front", quantity=3), now_ms=NOW)
    assert sorted(hold.seats) == [seat_id("A", 1, n) for n in (2, 3, 4)]
    # the next best three are 3-5 of row 2 (row 1 has only 1 and 5-6 left)
    second = await ledger.hold(SESSION, req("h2", "u2", tier_id="front", quantity=3), now_ms=NOW)
    assert sorted(second.seats) == [seat_id("A", 2, n) for n in (2, 3, 4)]


async def test_best_available_falls_back_to_split_seats_only_if_asked(ledger: SeatLedger):
    # leave only single seats in "back": B-1-2 held, so 1 and 3 remain, not adjacent
    await ledger.hold(SESSION, req("h1", seat_ids=(seat_id("B", 1, 2),)), now_ms=NOW)
    with pytest.raises(SeatUnavailable) as refused:
        await ledger.hold(SESSION, req("h2", "u2", tier_id="back", quantity=2), now_ms=NOW)
    assert refused.value.details["reason"] == "NO_ADJACENT_SEATS"
    split = await ledger.hold(
        SESSION, req("h3", "u2", tier_id="back", quantity=2, allow_split=True), now_ms=NOW
    )
    assert sorted(split.seats) == [seat_id("B", 1, 1), seat_id("B", 1, 3)]
    with pytest.raises(SoldOut):
        await ledger.hold(SESSION, req("h4", "u3", tier_id="back", quantity=1), now_ms=NOW)


async def test_per_user_limit_counts_holds_and_purchases(ledger: SeatLedger):
    await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=3, user_limit=4), now_ms=NOW)
    with pytest.raises(BadUserInput) as refused:
        await ledger.hold(SESSION, req("h2", tier_id="ga", quantity=2, user_limit=4), now_ms=NOW)
    assert refused.value.details["reason"] == "USER_LIMIT"
    await ledger.mark_pending(SESSION, "h1", "u1", until_ms=NOW + TTL, now_ms=NOW)
    assert await ledger.confirm(SESSION, "h1")
    with pytest.raises(BadUserInput):
        await ledger.hold(SESSION, req("h3", tier_id="ga", quantity=2, user_limit=4), now_ms=NOW)
    await ledger.hold(SESSION, req("h4", "u2", tier_id="ga", quantity=2, user_limit=4), now_ms=NOW)
    await ledger.hold(SESSION, req("h5", tier_id="ga", quantity=1, user_limit=4), now_ms=NOW)


async def test_release_and_expiry_give_units_back(ledger: SeatLedger):
    hold = await ledger.hold(
        SESSION, req("h1", seat_ids=(seat_id("A", 1, 1),), ttl_ms=1000), now_ms=NOW
    )
    assert hold.expires_at_ms == NOW + 1000
    assert await ledger.release(SESSION, "h1", now_ms=NOW)
    assert not await ledger.release(SESSION, "h1", now_ms=NOW)
    with pytest.raises(HoldNotFound):
        await ledger.get(SESSION, "h1", now_ms=NOW)
    await ledger.hold(SESSION, req("h2", tier_id="ga", quantity=2, ttl_ms=1000), now_ms=NOW)
    assert await ledger.due_sessions(now_ms=NOW + 1000) == [SESSION]
    assert await ledger.expire(SESSION, now_ms=NOW + 999) == []
    assert await ledger.expire(SESSION, now_ms=NOW + 1000) == ["h2"]
    with pytest.raises(HoldExpired):
        await ledger.get(SESSION, "h2", now_ms=NOW + 1000)
    with pytest.raises(HoldExpired):
        await ledger.mark_pending(SESSION, "h2", "u1", until_ms=NOW + TTL, now_ms=NOW + 1000)
    assert (await ledger.snapshot(SESSION, now_ms=NOW + 1000)).available["ga"] == 10
    assert await ledger.due_sessions(now_ms=NOW + 10_000) == []
    await assert_balanced(ledger)


async def test_the_sweeper_index_follows_the_earliest_expiry(ledger: SeatLedger):
    # given holds lapsing at different times
    await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=1, ttl_ms=1000), now_ms=NOW)
    await ledger.hold(SESSION, req("h2", "u2", tier_id="ga", quantity=1, ttl_ms=5000), now_ms=NOW)
    # then the sweeper is brought by the first, then by the next one still held
    assert await ledger.due_sessions(now_ms=NOW + 999) == []
    assert await ledger.due_sessions(now_ms=NOW + 1000) == [SESSION]
    assert await ledger.expire(SESSION, now_ms=NOW + 1000) == ["h1"]
    assert await ledger.due_sessions(now_ms=NOW + 4999) == []
    assert await ledger.due_sessions(now_ms=NOW + 5000) == [SESSION]
    # and a hold lapsing earlier than the tracked one moves the index forward
    await ledger.hold(
        SESSION, req("h3", "u3", tier_id="ga", quantity=1, ttl_ms=2000), now_ms=NOW + 1000
    )
    assert await ledger.due_sessions(now_ms=NOW + 3000) == [SESSION]


@pytest.mark.parametrize("ledger_url", ["redis"], indirect=True)
async def test_a_lost_index_entry_heals_at_the_next_hold(backends: Backends):
    # given the index entry of a session went missing (its ZADD was lost with a process)
    ledger = make_ledger(backends)
    await ledger.load(small_session(), now_ms=NOW)
    await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=1, ttl_ms=1000), now_ms=NOW)
    assert backends.redis is not None
    await backends.redis.delete("bo:ledger:active")
    # when another hold comes after the tracked time has passed
    await ledger.hold(
        SESSION, req("h2", "u2", tier_id="ga", quantity=1, ttl_ms=1000), now_ms=NOW + 1500
    )
    # then the sweeper finds the session again
    assert await ledger.due_sessions(now_ms=NOW + 2500) == [SESSION]


async def test_a_due_hold_expires_lazily_on_the_next_operation(ledger: SeatLedger):
    await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=10, ttl_ms=1000), now_ms=NOW)
    # no sweeper ran, yet a later hold sees the units back
    again = await ledger.hold(
        SESSION, req("h2", "u2", tier_id="ga", quantity=10), now_ms=NOW + 1001
    )
    assert again.units == {"ga": 10}


async def test_pending_holds_outlive_the_hold_and_confirm_sells(ledger: SeatLedger):
    await ledger.hold(SESSION, req("h1", seat_ids=(seat_id("A", 2, 6),), ttl_ms=1000), now_ms=NOW)
    with pytest.raises(HoldNotFound):
        await ledger.mark_pending(SESSION, "h1", "someone-else", until_ms=NOW + 60_000, now_ms=NOW)
    pending = await ledger.mark_pending(SESSION, "h1", "u1", until_ms=NOW + 60_000, now_ms=NOW)
    assert pending.state == HoldState.PENDING
    assert pending.expires_at_ms == NOW + 60_000
    assert await ledger.expire(SESSION, now_ms=NOW + 10_000) == []
    assert await ledger.confirm(SESSION, "h1")
    assert not await ledger.confirm(SESSION, "h1")
    snap = await ledger.snapshot(SESSION, now_ms=NOW + 10_000)
    assert snap.seats[seat_id("A", 2, 6)] == SeatState.SOLD
    # and a pending hold that nothing ends lapses at its own time
    await ledger.hold(SESSION, req("h2", tier_id="ga", quantity=2), now_ms=NOW)
    await ledger.mark_pending(SESSION, "h2", "u1", until_ms=NOW + 200_000, now_ms=NOW)
    assert await ledger.expire(SESSION, now_ms=NOW + 199_999) == []
    assert await ledger.expire(SESSION, now_ms=NOW + 200_000) == ["h2"]
    counts = await ledger.counts(SESSION)
    assert counts["front"].sold == 1
    await assert_balanced(ledger)


async def test_returned_units_go_back_or_straight_into_an_offer(
    ledger: SeatLedger, backends: Backends
):
    # given two sold seats and three sold general-admission units
    await ledger.hold(
        SESSION, req("h1", seat_ids=(seat_id("A", 1, 1), seat_id("A", 1, 2))), now_ms=NOW
    )
    await ledger.hold(SESSION, req("h2", tier_id="ga", quantity=3), now_ms=NOW)
    for hold_id in ("h1", "h2"):
        await ledger.mark_pending(SESSION, hold_id, "u1", until_ms=NOW + TTL, now_ms=NOW)
        await ledger.confirm(SESSION, hold_id)
    # when one seat goes back to the public
    await ledger.return_units(SESSION, user_id="u1", seat_ids=(seat_id("A", 1, 1),), now_ms=NOW)
    snap = await ledger.snapshot(SESSION, now_ms=NOW)
    assert snap.seats[seat_id("A", 1, 1)] == SeatState.AVAILABLE
    # and the other seat plus two units go straight to a waitlisted user, watched on the stream
    async with backends.broker.subscribe(channels.session_availability(SESSION)) as messages:
        await asyncio.sleep(0.05)
        offer = await ledger.return_units(
            SESSION,
            user_id="u1",
            seat_ids=(seat_id("A", 1, 2),),
            to=req("offer-1", "waiter", ttl_ms=1800_000),
            now_ms=NOW,
        )
        message = orjson.loads(await asyncio.wait_for(messages.__anext__(), 5))
    assert offer is not None
    assert offer.user_id == "waiter"
    assert message["s"] == {seat_id("A", 1, 2): "H"}  # never AVAILABLE to the public
    units_offer = await ledger.return_units(
        SESSION, user_id="u1", units={"ga": 2}, to=req("offer-2", "w2"), now_ms=NOW
    )
    assert units_offer is not None
    assert units_offer.units == {"ga": 2}
    assert (await ledger.snapshot(SESSION, now_ms=NOW)).available["ga"] == 7
    with pytest.raises(BadUserInput):
        await ledger.return_units(SESSION, user_id="u1", seat_ids=(seat_id("A", 1, 5),), now_ms=NOW)
    with pytest.raises(BadUserInput):
        await ledger.return_units(SESSION, user_id="u1", units={"ga": 5}, now_ms=NOW)
    await assert_balanced(ledger)


async def test_a_hold_is_handed_over_to_offers_without_a_public_moment(
    ledger: SeatLedger, backends: Backends
):
    # given an unpaid order's hold of three seats and a hold of four general-admission units
    seats = (seat_id("A", 1, 1), seat_id("A", 1, 2), seat_id("A", 1, 3))
    await ledger.hold(SESSION, req("order-1", seat_ids=seats), now_ms=NOW)
    await ledger.mark_pending(SESSION, "order-1", "u1", until_ms=NOW + TTL, now_ms=NOW)
    await ledger.hold(SESSION, req("order-2", tier_id="ga", quantity=4), now_ms=NOW)
    # when the seated hold ends, two seats passing to one offer, watched on the stream
    async with backends.broker.subscribe(channels.session_availability(SESSION)) as messages:
        await asyncio.sleep(0.05)
        (offer,) = await ledger.hand_over(
            SESSION,
            "order-1",
            offers=(req("offer-1", "waiter", ttl_ms=1800_000, seat_ids=seats[:2]),),
            now_ms=NOW,
        )
        message = orjson.loads(await asyncio.wait_for(messages.__anext__(), 5))
    # then the offered seats never showed AVAILABLE; the third went back to the public
    assert message["s"] == {seats[0]: "H", seats[1]: "H", seats[2]: "A"}
    assert offer.user_id == "waiter"
    assert offer.seats == {seats[0]: "front", seats[1]: "front"}
    assert offer.expires_at_ms == NOW + 1800_000
    with pytest.raises(HoldNotFound):
        await ledger.get(SESSION, "order-1", now_ms=NOW)
    # and general-admission units split between two offers and the public
    holds = await ledger.hand_over(
        SESSION,
        "order-2",
        offers=(
            req("offer-2", "w2", tier_id="ga", quantity=1),
            req("offer-3", "w3", tier_id="ga", quantity=2),
        ),
        now_ms=NOW,
    )
    assert [h.units for h in holds] == [{"ga": 1}, {"ga": 2}]
    snap = await ledger.snapshot(SESSION, now_ms=NOW)
    assert snap.available["ga"] == 7
    assert snap.seats[seats[2]] == SeatState.AVAILABLE
    await assert_balanced(ledger)


async def test_hand_over_refuses_what_it_cannot_do_and_changes_nothing(ledger: SeatLedger):
    # given an offer hold and a hold an order owns
    await ledger.hold(SESSION, req("offer-1", "waiter", tier_id="ga", quantity=2), now_ms=NOW)
    await ledger.hold(SESSION, req("order-1", seat_ids=(seat_id("A", 2, 1),)), now_ms=NOW)
    await ledger.mark_pending(SESSION, "order-1", "u1", until_ms=NOW + TTL, now_ms=NOW)
    before = await ledger.counts(SESSION)
    # then: more units than the hold has, a seat it does not have, an order's hold when only
    # a plain hold may pass on, a hold that is gone, a channel's hold
    with pytest.raises(BadUserInput) as more:
        await ledger.hand_over(
            SESSION, "offer-1", offers=(req("o2", tier_id="ga", quantity=3),), now_ms=NOW
        )
    assert more.value.details["reason"] == "NOT_IN_HOLD"
    with pytest.raises(BadUserInput):
        await ledger.hand_over(
            SESSION, "order-1", offers=(req("o2", seat_ids=(seat_id("A", 2, 2),)),), now_ms=NOW
        )
    with pytest.raises(BadUserInput) as ordered:
        await ledger.hand_over(SESSION, "order-1", offers=(), only_held=True, now_ms=NOW)
    assert ordered.value.details["reason"] == "HOLD_ORDERED"
    with pytest.raises(HoldNotFound):
        await ledger.hand_over(SESSION, "nope", offers=(), now_ms=NOW)
    await ledger.set_quota(SESSION, "ga", "agent-x", 2)
    await ledger.hold(
        SESSION, req("agent-1", tier_id="ga", quantity=1, channel="agent-x"), now_ms=NOW
    )
    with pytest.raises(BadUserInput) as channel:
        await ledger.hand_over(SESSION, "agent-1", offers=(), now_ms=NOW)
    assert channel.value.details["reason"] == "CHANNEL_HOLD"
    assert (await ledger.get(SESSION, "offer-1", now_ms=NOW)).units == {"ga": 2}
    assert (await ledger.counts(SESSION))["front"] == before["front"]
    # and a lapsed hold answers HOLD_EXPIRED: its units already went back
    with pytest.raises(HoldExpired):
        await ledger.hand_over(SESSION, "offer-1", offers=(), now_ms=NOW + TTL)
    await assert_balanced(ledger)


async def test_channel_quota_is_set_aside_from_the_public(ledger: SeatLedger):
    await ledger.set_quota(SESSION, "ga", "agent-x", 5)
    assert (await ledger.snapshot(SESSION, now_ms=NOW)).available["ga"] == 5
    with pytest.raises(SoldOut) as refused:
        await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=6), now_ms=NOW)
    assert refused.value.details["available"] == 5
    channel_hold = await ledger.hold(
        SESSION, req("h2", tier_id="ga", quantity=7, channel="agent-x"), now_ms=NOW
    )
    assert channel_hold.units == {"ga": 7}
    assert (await ledger.snapshot(SESSION, now_ms=NOW)).available["ga"] == 3
    await ledger.release(SESSION, "h2", now_ms=NOW)
    assert (await ledger.snapshot(SESSION, now_ms=NOW)).available["ga"] == 5
    with pytest.raises(SoldOut):
        await ledger.set_quota(SESSION, "ga", "agent-y", 6)
    await ledger.set_quota(SESSION, "ga", "agent-x", 0)
    assert (await ledger.snapshot(SESSION, now_ms=NOW)).available["ga"] == 10


async def test_loading_restores_sold_and_pending_from_the_database(backends: Backends):
    ledger = make_ledger(backends)
    taken = (
        Taken(hold_id="order-1", user_id="u1", seat_ids=(seat_id("A", 1, 1),), sold=True),
        Taken(hold_id="order-2", user_id="u2", units={"ga": 4}, sold=False, until_ms=NOW + 900_000),
    )
    first_version = await ledger.load(small_session(taken=taken), now_ms=NOW)
    snap = await ledger.snapshot(SESSION, now_ms=NOW)
    assert snap.seats[seat_id("A", 1, 1)] == SeatState.SOLD
    assert snap.available["ga"] == 6
    restored = await ledger.get(SESSION, "order-2", now_ms=NOW)
    assert restored.state == HoldState.PENDING
    assert restored.expires_at_ms == NOW + 900_000
    assert await ledger.due_sessions(now_ms=NOW + 900_000) == [SESSION]
    assert await ledger.confirm(SESSION, "order-2")
    await assert_balanced(ledger)
    # versions only grow: reloading, even after the state was lost, moves forward
    second_version = await ledger.load(small_session(), now_ms=NOW)
    assert second_version > snap.version > first_version - 1
    await ledger.forget(SESSION)
    assert not await ledger.is_loaded(SESSION)
    third_version = await ledger.load(small_session(), now_ms=NOW + 1)
    assert third_version > second_version


async def test_published_deltas_replay_to_the_snapshot(ledger: SeatLedger, backends: Backends):
    # given a subscriber holding the first snapshot
    start = await ledger.snapshot(SESSION, now_ms=NOW)
    state = {
        "v": start.version,
        "t": dict(start.available),
        "s": {k: v.value for k, v in start.seats.items()},
    }
    async with backends.broker.subscribe(channels.session_availability(SESSION)) as messages:
        await asyncio.sleep(0.05)
        # when many operations happen
        rng = random.Random(7)
        ids = [seat_id("A", r, n) for r in (1, 2) for n in range(1, 7)]
        for i in range(40):
            with contextlib.suppress(SeatUnavailable):
                await ledger.hold(
                    SESSION, req(f"h{i}", f"u{i}", seat_ids=tuple(rng.sample(ids, 2))), now_ms=NOW
                )
            if i % 3 == 0:
                await ledger.release(SESSION, f"h{i - 1}", now_ms=NOW)
        end = await ledger.snapshot(SESSION, now_ms=NOW)
        # then applying every message in order reproduces the final state, versions step by one
        while state["v"] < end.version:
            message = orjson.loads(await asyncio.wait_for(messages.__anext__(), 5))
            assert message["v"] == state["v"] + 1
            state["v"] = message["v"]
            state["t"].update(message["t"])
            state["s"].update(message["s"])
    assert state["t"] == end.available
    assert state["s"] == {k: v.value for k, v in end.seats.items()}


async def test_concurrent_holds_never_share_a_seat(ledger: SeatLedger):
    rng = random.Random(11)
    ids = [seat_id("A", r, n) for r in (1, 2) for n in range(1, 7)]

    async def attempt(i: int) -> dict[str, str] | None:
        try:
            hold = await ledger.hold(
                SESSION,
                req(f"c{i}", f"u{i}", seat_ids=tuple(rng.sample(ids, rng.randint(1, 3)))),
                now_ms=NOW,
            )
        except (SeatUnavailable, SoldOut):
            return None
        return hold.seats

    results = await asyncio.gather(*(attempt(i) for i in range(200)))
    won = [seats for seats in results if seats]
    flat = [s for seats in won for s in seats]
    assert len(flat) == len(set(flat))
    counts = await ledger.counts(SESSION)
    assert counts["front"].held == len(flat)
    await assert_balanced(ledger)


async def test_an_unforced_load_leaves_a_loaded_session_alone(ledger: SeatLedger):
    # given a hold taken after the session was loaded
    await ledger.hold(SESSION, req("h1", tier_id="ga", quantity=3), now_ms=NOW)
    version = (await ledger.snapshot(SESSION, now_ms=NOW)).version
    # when a second process, which also found it missing a moment ago, loads it
    assert await ledger.load(small_session(), now_ms=NOW, force=False) == version
    # then the hold survives
    assert (await ledger.get(SESSION, "h1", now_ms=NOW)).units == {"ga": 3}
