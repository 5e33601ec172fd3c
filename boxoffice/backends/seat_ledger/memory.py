"""The seat ledger in process memory (embedded mode, one process).

Each operation runs without an ``await`` between its checks and its changes, so it is atomic
on the event loop; the change is then published on the broker like the Redis scripts do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from boxoffice.backends.broker import Broker, channels
from boxoffice.backends.seat_ledger import (
    Hold,
    HoldRequest,
    HoldState,
    LedgerNotLoaded,
    SeatState,
    SessionSpec,
    Snapshot,
    TierCounts,
    delta_message,
)
from boxoffice.backends.seat_ledger.layout import Row, choose, rows_by_tier
from boxoffice.errors import BadUserInput, HoldExpired, HoldNotFound, SeatUnavailable, SoldOut

GONE_TTL_MS = 3_600_000


@dataclass
class _Tier:
    capacity: int
    seated: bool
    free: int = 0
    held: int = 0
    sold: int = 0
    blocked: int = 0
    quotas: dict[str, int] = field(default_factory=dict)

    @property
    def set_aside(self) -> int:
        return min(self.free, sum(self.quotas.values()))

    @property
    def public(self) -> int:
        return max(0, self.free - sum(self.quotas.values()))


@dataclass
class _Hold:
    user_id: str
    seats: dict[str, str]
    units: dict[str, int]
    from_quota: dict[str, int]  # tier -> units taken from the channel's quota
    channel: str | None
    expires_at_ms: int
    state: HoldState
    meta: str


@dataclass
class _Session:
    version: int
    tiers: dict[str, _Tier]
    seats: dict[str, list[str]]  # seat id -> [state, tier id, hold id]
    rows: dict[str, list[Row]]
    holds: dict[str, _Hold] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    gone: dict[str, tuple[str, int]] = field(default_factory=dict)  # hold -> (why, at ms)


class _Delta:
    def __init__(self) -> None:
        self.tiers: set[str] = set()
        self.seats: dict[str, str] = {}


class MemorySeatLedger:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._sessions: dict[str, _Session] = {}
        self._versions: dict[str, int] = {}  # survives forget(): versions only increase

    # -- helpers ---------------------------------------------------------------------------

    def _session(self, session_id: str) -> _Session:
        state = self._sessions.get(session_id)
        if state is None:
            raise LedgerNotLoaded(session_id)
        return state

    async def _publish(
        self, session_id: str, state: _Session, delta: _Delta, *, full: bool = False
    ) -> int:
        if not (delta.tiers or delta.seats or full):
            return state.version
        state.version += 1
        self._versions[session_id] = state.version
        message = delta_message(
            state.version,
            {t: state.tiers[t].public for t in sorted(delta.tiers)},
            delta.seats,
            full=full,
        )
        await self._broker.publish(
            channels.session_availability(session_id), orjson.dumps(message).decode()
        )
        return state.version

    def _give_back(
        self, state: _Session, hold_id: str, why: str, now_ms: int, delta: _Delta
    ) -> None:
        hold = state.holds.pop(hold_id)
        for seat_id in hold.seats:
            entry = state.seats[seat_id]
            if entry[0] == SeatState.HELD and entry[2] == hold_id:
                entry[0], entry[2] = SeatState.AVAILABLE, ""
                delta.seats[seat_id] = SeatState.AVAILABLE
        for tier_id, n in hold.units.items():
            tier = state.tiers[tier_id]
            tier.held -= n
            tier.free += n
            delta.tiers.add(tier_id)
        if hold.channel:
            for tier_id, n in hold.from_quota.items():
                quotas = state.tiers[tier_id].quotas
                quotas[hold.channel] = quotas.get(hold.channel, 0) + n
        state.users[hold.user_id] = state.users.get(hold.user_id, 0) - sum(hold.units.values())
        state.gone[hold_id] = (why, now_ms)

    def _expire_due(self, state: _Session, now_ms: int, delta: _Delta) -> list[str]:
        due = [hold_id for hold_id, hold in state.holds.items() if hold.expires_at_ms <= now_ms]
        for hold_id in due:
            self._give_back(state, hold_id, "EXPIRED", now_ms, delta)
        if len(state.gone) > 10_000:
            state.gone = {k: v for k, v in state.gone.items() if v[1] > now_ms - GONE_TTL_MS}
        return due

    def _to_hold(self, session_id: str, state: _Session, hold_id: str) -> Hold:
        hold = state.holds[hold_id]
        return Hold(
            hold_id=hold_id,
            session_id=session_id,
            user_id=hold.user_id,
            seats=dict(hold.seats),
            units=dict(hold.units),
            expires_at_ms=hold.expires_at_ms,
            state=hold.state,
            version=state.version,
            meta=hold.meta,
        )

    def _take(
        self,
        state: _Session,
        request: HoldRequest,
        now_ms: int,
        delta: _Delta,
        *,
        public_only: bool = True,
    ) -> None:
        """Check and apply ``request`` (raises without changing anything)."""
        if request.hold_id in state.holds:
            raise BadUserInput("This hold already exists.", field="holdId")
        seats: dict[str, str] = {}
        need: dict[str, int] = {}
        if request.seat_ids:
            if len(set(request.seat_ids)) != len(request.seat_ids):
                raise BadUserInput("A seat is listed twice.", field="seatIds")
            unknown = [s for s in request.seat_ids if s not in state.seats]
            if unknown:
                raise BadUserInput("No such seat in this session.", field="seatIds", seats=unknown)
            taken = [s for s in request.seat_ids if state.seats[s][0] != SeatState.AVAILABLE]
            if taken:
                raise SeatUnavailable(seats=taken)
            for seat_id in request.seat_ids:
                tier_id = state.seats[seat_id][1]
                seats[seat_id] = tier_id
                need[tier_id] = need.get(tier_id, 0) + 1
        else:
            tier_id = request.tier_id or ""
            tier = state.tiers.get(tier_id)
            if tier is None:
                raise BadUserInput("No such tier in this session.", field="tierId")
            if request.quantity <= 0:
                raise BadUserInput("quantity must be > 0", field="quantity")
            if tier.seated:
                usable_count = self._usable_units(tier, request.channel)
                if usable_count == 0:
                    raise SoldOut(available=0)
                if usable_count < request.quantity:
                    raise SoldOut(f"Only {usable_count} left.", available=usable_count)
                chosen = choose(
                    state.rows.get(tier_id, []),
                    request.quantity,
                    lambda s: (
                        state.seats[s][0] == SeatState.AVAILABLE and state.seats[s][1] == tier_id
                    ),
                    allow_split=request.allow_split,
                )
                if chosen is None:
                    raise SeatUnavailable(
                        "Not enough seats together are left; choose seats or allow split.",
                        reason="NO_ADJACENT_SEATS",
                    )
                seats = dict.fromkeys(chosen, tier_id)
            need = {tier_id: request.quantity}
        total = sum(need.values())
        if (
            request.user_limit is not None
            and state.users.get(request.user_id, 0) + total > request.user_limit
        ):
            raise BadUserInput(
                f"At most {request.user_limit} tickets per person for this session.",
                field="quantity",
                reason="USER_LIMIT",
            )
        from_quota: dict[str, int] = {}
        for tier_id, n in need.items():
            tier = state.tiers[tier_id]
            usable_count = self._usable_units(tier, request.channel) if public_only else tier.free
            if usable_count < n:
                if usable_count == 0:
                    raise SoldOut(available=0)
                raise SoldOut(f"Only {usable_count} left.", available=usable_count)
            if request.channel and public_only:
                from_quota[tier_id] = min(tier.quotas.get(request.channel, 0), n)
        # apply
        for tier_id, n in need.items():
            tier = state.tiers[tier_id]
            tier.free -= n
            tier.held += n
            if from_quota.get(tier_id):
                tier.quotas[request.channel or ""] -= from_quota[tier_id]
            delta.tiers.add(tier_id)
        for seat_id in seats:
            entry = state.seats[seat_id]
            entry[0], entry[2] = SeatState.HELD, request.hold_id
            delta.seats[seat_id] = SeatState.HELD
        state.users[request.user_id] = state.users.get(request.user_id, 0) + total
        state.holds[request.hold_id] = _Hold(
            user_id=request.user_id,
            seats=seats,
            units=need,
            from_quota=from_quota,
            channel=request.channel,
            expires_at_ms=now_ms + request.ttl_ms,
            state=HoldState.HELD,
            meta=request.meta,
        )

    @staticmethod
    def _usable_units(tier: _Tier, channel: str | None) -> int:
        return tier.public + (tier.quotas.get(channel, 0) if channel else 0)

    # -- the port ----------------------------------------------------------------------------

    async def load(self, spec: SessionSpec, *, now_ms: int, force: bool = True) -> int:
        if not force and spec.session_id in self._sessions:
            return self._sessions[spec.session_id].version
        tiers = {
            t.tier_id: _Tier(
                capacity=t.capacity, seated=t.seated, free=t.capacity, quotas=dict(t.quotas)
            )
            for t in spec.tiers
        }
        seats: dict[str, list[str]] = {}
        for seat in spec.seats:
            tier = tiers[seat.tier_id]
            if seat.blocked:
                seats[seat.seat_id] = [SeatState.BLOCKED, seat.tier_id, ""]
                tier.free -= 1
                tier.blocked += 1
            else:
                seats[seat.seat_id] = [SeatState.AVAILABLE, seat.tier_id, ""]
        previous = self._versions.get(spec.session_id, 0)
        state = _Session(
            version=max(previous + 1, now_ms * 1000),
            tiers=tiers,
            seats=seats,
            rows=rows_by_tier(spec.seats),
        )
        for taken in spec.taken:
            units = dict(taken.units)
            for seat_id in taken.seat_ids:
                tier_id = seats[seat_id][1]
                units[tier_id] = units.get(tier_id, 0) + 1
                seats[seat_id] = [
                    SeatState.SOLD if taken.sold else SeatState.HELD,
                    tier_id,
                    "" if taken.sold else taken.hold_id,
                ]
            for tier_id, n in units.items():
                tier = tiers[tier_id]
                tier.free -= n
                if taken.sold:
                    tier.sold += n
                else:
                    tier.held += n
            state.users[taken.user_id] = state.users.get(taken.user_id, 0) + sum(units.values())
            if not taken.sold:
                state.holds[taken.hold_id] = _Hold(
                    user_id=taken.user_id,
                    seats={s: seats[s][1] for s in taken.seat_ids},
                    units=units,
                    from_quota={},
                    channel=None,
                    expires_at_ms=taken.until_ms,
                    state=HoldState.PENDING,
                    meta="",
                )
        self._sessions[spec.session_id] = state
        self._versions[spec.session_id] = state.version
        delta = _Delta()
        delta.tiers.update(tiers)
        delta.seats.update({s: e[0] for s, e in seats.items()})
        state.version -= 1  # _publish bumps it back: the full message carries the new version
        return await self._publish(spec.session_id, state, delta, full=True)

    async def is_loaded(self, session_id: str) -> bool:
        return session_id in self._sessions

    async def hold(self, session_id: str, request: HoldRequest, *, now_ms: int) -> Hold:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        try:
            self._take(state, request, now_ms, delta)
        finally:
            await self._publish(session_id, state, delta)
        return self._to_hold(session_id, state, request.hold_id)

    async def get(self, session_id: str, hold_id: str, *, now_ms: int) -> Hold:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        await self._publish(session_id, state, delta)
        if hold_id in state.holds:
            return self._to_hold(session_id, state, hold_id)
        gone = state.gone.get(hold_id)
        if gone is not None and gone[0] == "EXPIRED":
            raise HoldExpired()
        raise HoldNotFound()

    async def release(self, session_id: str, hold_id: str, *, now_ms: int) -> bool:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        found = hold_id in state.holds
        if found:
            self._give_back(state, hold_id, "RELEASED", now_ms, delta)
        await self._publish(session_id, state, delta)
        return found

    async def mark_pending(
        self, session_id: str, hold_id: str, user_id: str, *, until_ms: int, now_ms: int
    ) -> Hold:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        await self._publish(session_id, state, delta)
        hold = state.holds.get(hold_id)
        if hold is None or hold.user_id != user_id:
            gone = state.gone.get(hold_id)
            if hold is None and gone is not None and gone[0] == "EXPIRED":
                raise HoldExpired()
            raise HoldNotFound()
        hold.state = HoldState.PENDING
        hold.expires_at_ms = until_ms
        return self._to_hold(session_id, state, hold_id)

    async def confirm(self, session_id: str, hold_id: str) -> bool:
        state = self._session(session_id)
        hold = state.holds.pop(hold_id, None)
        if hold is None:
            return False
        delta = _Delta()
        for seat_id in hold.seats:
            entry = state.seats[seat_id]
            entry[0], entry[2] = SeatState.SOLD, ""
            delta.seats[seat_id] = SeatState.SOLD
        for tier_id, n in hold.units.items():
            tier = state.tiers[tier_id]
            tier.held -= n
            tier.sold += n
            delta.tiers.add(tier_id)
        state.gone[hold_id] = ("CONFIRMED", 0)
        await self._publish(session_id, state, delta)
        return True

    async def expire(self, session_id: str, *, now_ms: int) -> list[str]:
        state = self._session(session_id)
        delta = _Delta()
        released = self._expire_due(state, now_ms, delta)
        await self._publish(session_id, state, delta)
        return released

    async def due_sessions(self, *, now_ms: int) -> list[str]:
        return [
            session_id
            for session_id, state in self._sessions.items()
            if any(h.expires_at_ms <= now_ms for h in state.holds.values())
        ]

    async def return_units(
        self,
        session_id: str,
        *,
        user_id: str,
        seat_ids: tuple[str, ...] = (),
        units: dict[str, int] | None = None,
        to: HoldRequest | None = None,
        now_ms: int,
    ) -> Hold | None:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        back: dict[str, int] = dict(units or {})
        for tier_id in back:
            if tier_id not in state.tiers or state.tiers[tier_id].seated:
                raise BadUserInput("Not a general-admission tier of this session.", field="units")
        for seat_id in seat_ids:
            entry = state.seats.get(seat_id)
            if entry is None or entry[0] != SeatState.SOLD:
                raise BadUserInput(
                    "Only sold seats can be returned.", field="seatIds", seats=[seat_id]
                )
            back[entry[1]] = back.get(entry[1], 0) + 1
        for tier_id, n in back.items():
            if state.tiers[tier_id].sold < n:
                raise BadUserInput("More units returned than were sold.", field="units")
        for tier_id, n in back.items():
            tier = state.tiers[tier_id]
            tier.sold -= n
            tier.free += n
            delta.tiers.add(tier_id)
        for seat_id in seat_ids:
            state.seats[seat_id][0] = SeatState.AVAILABLE
            delta.seats[seat_id] = SeatState.AVAILABLE
        state.users[user_id] = state.users.get(user_id, 0) - sum(back.values())
        result = None
        try:
            if to is not None:
                # the returned units go straight into the offer hold, never to the public
                self._take_returned(state, to, seat_ids, back, now_ms, delta)
                result = self._to_hold(session_id, state, to.hold_id)
        finally:
            await self._publish(session_id, state, delta)
        return result

    def _take_returned(
        self,
        state: _Session,
        request: HoldRequest,
        seat_ids: tuple[str, ...],
        back: dict[str, int],
        now_ms: int,
        delta: _Delta,
    ) -> None:
        """Hold exactly the units just returned, ignoring channel set-asides (they were sold,
        so they never counted against the public pool)."""
        seats: dict[str, str] = {}
        for seat_id in seat_ids:
            seats[seat_id] = state.seats[seat_id][1]
            state.seats[seat_id][0] = SeatState.HELD
            state.seats[seat_id][2] = request.hold_id
            delta.seats[seat_id] = SeatState.HELD
        for tier_id, n in back.items():
            tier = state.tiers[tier_id]
            tier.free -= n
            tier.held += n
        state.users[request.user_id] = state.users.get(request.user_id, 0) + sum(back.values())
        state.holds[request.hold_id] = _Hold(
            user_id=request.user_id,
            seats=seats,
            units=dict(back),
            from_quota={},
            channel=None,
            expires_at_ms=now_ms + request.ttl_ms,
            state=HoldState.HELD,
            meta=request.meta,
        )

    async def hand_over(
        self,
        session_id: str,
        hold_id: str,
        *,
        offers: tuple[HoldRequest, ...],
        only_held: bool = False,
        now_ms: int,
    ) -> list[Hold]:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        try:
            plan = self._plan_hand_over(state, hold_id, offers, only_held)
            self._give_back(state, hold_id, "HANDED_OVER", now_ms, delta)
            for offer, seat_ids, units in plan:
                self._take_returned(state, offer, seat_ids, units, now_ms, delta)
        finally:
            await self._publish(session_id, state, delta)
        return [self._to_hold(session_id, state, offer.hold_id) for offer in offers]

    @staticmethod
    def _plan_hand_over(
        state: _Session, hold_id: str, offers: tuple[HoldRequest, ...], only_held: bool
    ) -> list[tuple[HoldRequest, tuple[str, ...], dict[str, int]]]:
        """Check ``hand_over``'s offers against the hold (raises without changing anything)."""
        hold = state.holds.get(hold_id)
        if hold is None:
            gone = state.gone.get(hold_id)
            if gone is not None and gone[0] == "EXPIRED":
                raise HoldExpired()
            raise HoldNotFound()
        if hold.channel:
            raise BadUserInput(
                "A sales channel's hold goes back to its channel.",
                field="holdId",
                reason="CHANNEL_HOLD",
            )
        if only_held and hold.state == HoldState.PENDING:
            raise BadUserInput("An order owns this hold.", field="holdId", reason="HOLD_ORDERED")
        seats_left = dict(hold.seats)
        units_left = dict(hold.units)
        for tier_id in hold.seats.values():
            units_left[tier_id] -= 1  # what is left per tier: general-admission units only
        plan: list[tuple[HoldRequest, tuple[str, ...], dict[str, int]]] = []
        seen: set[str] = {hold_id}
        for offer in offers:
            if offer.hold_id in seen or offer.hold_id in state.holds:
                raise BadUserInput("This hold already exists.", field="holdId")
            seen.add(offer.hold_id)
            units: dict[str, int] = {}
            if offer.seat_ids:
                for seat_id in offer.seat_ids:
                    tier_id = seats_left.pop(seat_id, "")
                    if not tier_id:
                        raise BadUserInput(
                            "Not a seat of this hold.",
                            field="seatIds",
                            reason="NOT_IN_HOLD",
                            seats=[seat_id],
                        )
                    units[tier_id] = units.get(tier_id, 0) + 1
            else:
                tier_id = offer.tier_id or ""
                if offer.quantity <= 0 or units_left.get(tier_id, 0) < offer.quantity:
                    raise BadUserInput(
                        "The hold has fewer units.", field="quantity", reason="NOT_IN_HOLD"
                    )
                units_left[tier_id] -= offer.quantity
                units[tier_id] = offer.quantity
            plan.append((offer, tuple(offer.seat_ids), units))
        return plan

    async def snapshot(self, session_id: str, *, now_ms: int, seats: bool = True) -> Snapshot:
        state = self._session(session_id)
        delta = _Delta()
        self._expire_due(state, now_ms, delta)
        await self._publish(session_id, state, delta)
        return Snapshot(
            session_id=session_id,
            version=state.version,
            available={t: tier.public for t, tier in state.tiers.items()},
            seats={s: SeatState(e[0]) for s, e in state.seats.items()} if seats else {},
        )

    async def set_quota(self, session_id: str, tier_id: str, channel: str, units: int) -> int:
        state = self._session(session_id)
        tier = state.tiers.get(tier_id)
        if tier is None:
            raise BadUserInput("No such tier in this session.", field="tierId")
        others = sum(q for c, q in tier.quotas.items() if c != channel)
        if units < 0 or others + units > tier.free:
            raise SoldOut(
                f"Only {tier.free - others} units can be set aside.", available=tier.free - others
            )
        if units:
            tier.quotas[channel] = units
        else:
            tier.quotas.pop(channel, None)
        delta = _Delta()
        delta.tiers.add(tier_id)
        return await self._publish(session_id, state, delta)

    async def counts(self, session_id: str) -> dict[str, TierCounts]:
        state = self._session(session_id)
        return {
            t: TierCounts(
                free=x.free, held=x.held, sold=x.sold, blocked=x.blocked, set_aside=x.set_aside
            )
            for t, x in state.tiers.items()
        }

    async def forget(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)
