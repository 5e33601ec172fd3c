"""Hypothesis drives random hold / release / pending / confirm / expire / return / hand-over
sequences against each seat-ledger adapter and checks, after every step, that per tier
sold + held + free + blocked = capacity, that no seat is in two holds, that the ledger agrees
with a simple model of who holds what, and that versions only grow."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from boxoffice.backends import open_backends
from boxoffice.backends.seat_ledger import HoldRequest, HoldState, SeatLedger, SeatState
from boxoffice.backends.seat_ledger.memory import MemorySeatLedger
from boxoffice.backends.seat_ledger.redis import RedisSeatLedger
from boxoffice.errors import BadUserInput, HoldExpired, HoldNotFound, SeatUnavailable, SoldOut
from tests.ledger_specs import SESSION, seat_id, small_session
from tests.services import RedisServer

CAPACITY = {"ga": 10, "front": 12, "back": 4}
SEATS = [seat_id("A", r, n) for r in (1, 2) for n in range(1, 7)] + [
    seat_id("B", 1, n) for n in range(1, 5)
]
USERS = ["u1", "u2", "u3"]
START = 1_800_000_000_000
LIMIT = 6  # per-user limit on every customer hold (waitlist offers are exempt)


class LedgerMachine(RuleBasedStateMachine):
    redis_url: str | None = None
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.backends = self.run(open_backends(self.redis_url))
        if self.backends.redis is not None:
            self.run(self.backends.redis.flushdb())
            self.ledger: SeatLedger = RedisSeatLedger(self.backends.redis)
        else:
            self.ledger = MemorySeatLedger(self.backends.broker)
        self.now = START
        self.version = self.run(self.ledger.load(small_session(), now_ms=self.now))
        self.counter = 0
        # the model: live holds -> (user, seats, units, state, expires), sold seats, sold GA units
        self.model: dict[str, dict[str, Any]] = {}
        self.sold_seats: dict[str, str] = {}  # seat -> buyer
        self.sold_ga: dict[str, int] = {}  # buyer -> units

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.backends.close())
        self.loop.close()

    def _new_id(self) -> str:
        self.counter += 1
        return f"h{self.counter}"

    def _expire_model(self) -> None:
        for hold_id in [h for h, v in self.model.items() if v["exp"] <= self.now]:
            del self.model[hold_id]

    def _record(self, hold: Any) -> str:
        self.model[hold.hold_id] = {
            "user": hold.user_id,
            "seats": set(hold.seats),
            "units": dict(hold.units),
            "state": "HELD",
            "exp": hold.expires_at_ms,
        }
        return str(hold.hold_id)

    @rule(
        target=holds,
        user=st.sampled_from(USERS),
        seats=st.lists(st.sampled_from(SEATS), min_size=1, max_size=4, unique=True),
        ttl=st.integers(1, 5000),
    )
    def hold_seats(self, user: str, seats: list[str], ttl: int) -> str:
        self._expire_model()
        try:
            hold = self.run(
                self.ledger.hold(
                    SESSION,
                    HoldRequest(self._new_id(), user, ttl, seat_ids=tuple(seats), user_limit=LIMIT),
                    now_ms=self.now,
                )
            )
        except (SeatUnavailable, SoldOut):
            taken = (
                {s for h in self.model.values() for s in h["seats"]}
                | set(self.sold_seats)
                | {seat_id("B", 1, 4)}
            )
            assert taken & set(seats), "refused although every seat was free"
            return "none"
        except BadUserInput as refused:
            assert refused.details["reason"] == "USER_LIMIT"
            return "none"
        assert not ({s for h in self.model.values() for s in h["seats"]} & set(seats))
        return self._record(hold)

    @rule(
        target=holds,
        user=st.sampled_from(USERS),
        tier=st.sampled_from(["ga", "front", "back"]),
        qty=st.integers(1, 4),
        split=st.booleans(),
        ttl=st.integers(1, 5000),
    )
    def hold_quantity(self, user: str, tier: str, qty: int, split: bool, ttl: int) -> str:
        self._expire_model()
        try:
            hold = self.run(
                self.ledger.hold(
                    SESSION,
                    HoldRequest(
                        self._new_id(),
                        user,
                        ttl,
                        tier_id=tier,
                        quantity=qty,
                        allow_split=split,
                        user_limit=LIMIT,
                    ),
                    now_ms=self.now,
                )
            )
        except (SoldOut, SeatUnavailable):
            return "none"
        except BadUserInput as refused:
            assert refused.details["reason"] == "USER_LIMIT"
            return "none"
        assert hold.units == {tier: qty}
        if tier != "ga":
            assert len(hold.seats) == qty
            assert all(t == tier for t in hold.seats.values())
            assert not ({s for h in self.model.values() for s in h["seats"]} & set(hold.seats))
            assert not (set(self.sold_seats) & set(hold.seats))
        return self._record(hold)

    @rule(hold_id=consumes(holds))
    def release(self, hold_id: str) -> None:
        self._expire_model()
        released = self.run(self.ledger.release(SESSION, hold_id, now_ms=self.now))
        assert released == (hold_id in self.model)
        self.model.pop(hold_id, None)

    @rule(hold_id=holds, grace=st.integers(1, 20_000))
    def mark_pending(self, hold_id: str, grace: int) -> None:
        self._expire_model()
        known = self.model.get(hold_id)
        until = self.now + grace
        try:
            hold = self.run(
                self.ledger.mark_pending(
                    SESSION,
                    hold_id,
                    known["user"] if known else "u1",
                    until_ms=until,
                    now_ms=self.now,
                )
            )
        except (HoldExpired, HoldNotFound):
            assert known is None
            return
        assert known is not None
        assert hold.state == HoldState.PENDING
        assert hold.expires_at_ms == until
        known["state"] = "PENDING"
        known["exp"] = until

    @rule(hold_id=consumes(holds))
    def confirm(self, hold_id: str) -> None:
        self._expire_model()
        known = self.model.get(hold_id)
        confirmed = self.run(self.ledger.confirm(SESSION, hold_id))
        assert confirmed == (known is not None)
        if known is not None:
            for seat in known["seats"]:
                self.sold_seats[seat] = known["user"]
            ga = known["units"].get("ga", 0)
            if ga:
                self.sold_ga[known["user"]] = self.sold_ga.get(known["user"], 0) + ga
            del self.model[hold_id]

    @rule(data=st.data(), offer=st.booleans())
    def refund(self, data: st.DataObject, offer: bool) -> None:
        self._expire_model()
        if not self.sold_seats and not self.sold_ga:
            return
        if self.sold_seats and (not self.sold_ga or data.draw(st.booleans())):
            seat = data.draw(st.sampled_from(sorted(self.sold_seats)))
            buyer = self.sold_seats.pop(seat)
            kwargs: dict[str, Any] = {"seat_ids": (seat,)}
        else:
            buyer = data.draw(st.sampled_from(sorted(self.sold_ga)))
            self.sold_ga[buyer] -= 1
            if not self.sold_ga[buyer]:
                del self.sold_ga[buyer]
            kwargs = {"units": {"ga": 1}}
        to = HoldRequest(self._new_id(), "waiter", 3000) if offer else None
        hold = self.run(
            self.ledger.return_units(SESSION, user_id=buyer, to=to, now_ms=self.now, **kwargs)
        )
        if hold is not None:
            self._record(hold)

    @rule(target=holds, hold_id=consumes(holds), data=st.data(), only_held=st.booleans())
    def hand_over(self, hold_id: str, data: st.DataObject, only_held: bool) -> str:
        self._expire_model()
        known = self.model.get(hold_id)
        offers: list[HoldRequest] = []
        if known is not None:
            seats = sorted(known["seats"])
            take = data.draw(st.lists(st.sampled_from(seats), unique=True)) if seats else []
            if take:
                offers.append(HoldRequest(self._new_id(), "waiter", 3000, seat_ids=tuple(take)))
            ga = known["units"].get("ga", 0)
            n = data.draw(st.integers(0, ga)) if ga else 0
            if n:
                offers.append(HoldRequest(self._new_id(), "waiter", 3000, tier_id="ga", quantity=n))
        try:
            made = self.run(
                self.ledger.hand_over(
                    SESSION, hold_id, offers=tuple(offers), only_held=only_held, now_ms=self.now
                )
            )
        except (HoldExpired, HoldNotFound):
            assert known is None
            return "none"
        except BadUserInput as refused:
            assert known is not None and only_held and known["state"] == "PENDING"
            assert refused.details["reason"] == "HOLD_ORDERED"
            return hold_id
        assert known is not None
        del self.model[hold_id]
        for hold in made:
            assert hold.user_id == "waiter"
            self._record(hold)
        return made[0].hold_id if made else "none"

    @rule(ms=st.integers(1, 3000))
    def tick(self, ms: int) -> None:
        self.now += ms

    @rule()
    def sweep(self) -> None:
        released = set(self.run(self.ledger.expire(SESSION, now_ms=self.now)))
        due = {h for h, v in self.model.items() if v["exp"] <= self.now}
        assert released == due
        self._expire_model()

    @invariant()
    def balanced_and_consistent(self) -> None:
        snap = self.run(self.ledger.snapshot(SESSION, now_ms=self.now))  # expires due holds
        self._expire_model()
        counts = self.run(self.ledger.counts(SESSION))
        for tier, c in counts.items():
            assert c.free + c.held + c.sold + c.blocked == CAPACITY[tier], (tier, c)
            assert min(c.free, c.held, c.sold) >= 0
        assert snap.version >= self.version
        self.version = snap.version
        held_seats = [s for h in self.model.values() for s in h["seats"]]
        assert len(held_seats) == len(set(held_seats)), "a seat is in two holds"
        for seat in SEATS:
            expected = (
                SeatState.BLOCKED
                if seat == seat_id("B", 1, 4)
                else SeatState.SOLD
                if seat in self.sold_seats
                else SeatState.HELD
                if seat in held_seats
                else SeatState.AVAILABLE
            )
            assert snap.seats[seat] == expected, (seat, snap.seats[seat], expected)
        held_ga = sum(h["units"].get("ga", 0) for h in self.model.values())
        assert counts["ga"].held == held_ga
        assert counts["ga"].sold == sum(self.sold_ga.values())
        assert snap.available["ga"] == 10 - held_ga - counts["ga"].sold
        for user in USERS:  # "waiter" gets offers outside the limit
            live = sum(sum(h["units"].values()) for h in self.model.values() if h["user"] == user)
            bought = sum(1 for b in self.sold_seats.values() if b == user) + self.sold_ga.get(
                user, 0
            )
            assert live + bought <= LIMIT, (user, live, bought)


MACHINE_SETTINGS = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("adapter", ["memory", "redis"])
def test_ledger_state_machine(adapter: str, request: pytest.FixtureRequest) -> None:
    machine = type(f"LedgerMachine_{adapter}", (LedgerMachine,), {})
    if adapter == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        machine.redis_url = server.url
    test_case = machine.TestCase
    test_case.settings = MACHINE_SETTINGS
    test_case().runTest()
