"""The seat ledger: the fast gate in front of the database for one session's inventory.

Every operation checks and changes all seats and counters of ONE session atomically (a Lua
script in Redis, a critical section without awaits in memory), bumps the session's
``version`` and publishes the change (same script, so the availability stream can never
disagree with the state). The database stays the truth: the ledger can be rebuilt from it at
any time (``load``), losing only holds that never became orders.

Units: a seated tier's units are its seats; a general-admission tier's units are a counter.
Per tier, ``free + held + sold + blocked = capacity`` always holds.

Seat states: ``A`` available, ``H`` held (a hold or an unpaid order), ``S`` sold, ``B`` blocked.

Channel quotas set aside a number of a tier's free units for a sales channel: public holds see
``free - set_aside``; a channel's hold takes from its quota first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class SeatState(StrEnum):
    AVAILABLE = "A"
    HELD = "H"
    SOLD = "S"
    BLOCKED = "B"


class HoldState(StrEnum):
    HELD = "HELD"  # expires at expires_at_ms
    PENDING = "PENDING"  # an order awaits payment: it lapses later (the order's expiry + grace)


@dataclass(frozen=True, slots=True)
class TierSpec:
    tier_id: str
    capacity: int
    seated: bool
    quotas: dict[str, int] = field(default_factory=dict)  # channel -> units set aside


@dataclass(frozen=True, slots=True)
class SeatSpec:
    seat_id: str
    tier_id: str
    section: str
    row: str
    number: int
    x: float
    y: float
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class Taken:
    """What the database says is already gone when (re)loading: one entry per live order."""

    hold_id: str
    user_id: str
    seat_ids: tuple[str, ...] = ()
    units: dict[str, int] = field(default_factory=dict)  # general-admission tier -> quantity
    sold: bool = False  # False: the order is unpaid (a PENDING hold named hold_id)
    until_ms: int = 0  # unpaid: when the pending hold lapses if nothing else ends it


@dataclass(frozen=True, slots=True)
class SessionSpec:
    session_id: str
    tiers: tuple[TierSpec, ...]
    seats: tuple[SeatSpec, ...] = ()
    taken: tuple[Taken, ...] = ()


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """What to hold. Exactly one of: ``seat_ids`` (chosen seats), or ``tier_id`` +
    ``quantity`` (a general-admission quantity, or the best available seats of a seated tier).
    """

    hold_id: str
    user_id: str
    ttl_ms: int
    seat_ids: tuple[str, ...] = ()
    tier_id: str | None = None
    quantity: int = 0
    channel: str | None = None
    user_limit: int | None = None  # units this user may hold + buy in the session
    allow_split: bool = False  # best available: fall back to non-adjacent seats
    meta: str = ""  # opaque to the ledger (the service keeps the price snapshot here)


@dataclass(frozen=True, slots=True)
class Hold:
    hold_id: str
    session_id: str
    user_id: str
    seats: dict[str, str]  # seat id -> tier id
    units: dict[str, int]  # tier id -> units held (seats counted too)
    expires_at_ms: int
    state: HoldState
    version: int
    meta: str = ""

    @property
    def quantity(self) -> int:
        return sum(self.units.values())


@dataclass(frozen=True, slots=True)
class TierCounts:
    free: int
    held: int
    sold: int
    blocked: int
    set_aside: int  # free units reserved for channels


@dataclass(frozen=True, slots=True)
class Snapshot:
    session_id: str
    version: int
    available: dict[str, int]  # tier id -> units the public can hold now
    seats: dict[str, SeatState]


class SeatLedger(Protocol):
    async def load(self, spec: SessionSpec, *, now_ms: int, force: bool = True) -> int:
        """Replace the session's state with ``spec`` (the database's truth); return the new
        version, larger than any version the session had before. With ``force=False`` a
        session that is already loaded is left alone (so two processes that both found it
        missing cannot wipe holds taken in between); its current version is returned."""
        ...

    async def is_loaded(self, session_id: str) -> bool: ...

    async def hold(self, session_id: str, request: HoldRequest, *, now_ms: int) -> Hold:
        """All or nothing. Raises ``SoldOut`` (nothing left for this request's channel),
        ``SeatUnavailable`` (``seats`` detail), ``BadUserInput`` (user limit, unknown seat or
        tier, wrong kind of tier), ``LedgerNotLoaded``."""
        ...

    async def get(self, session_id: str, hold_id: str, *, now_ms: int) -> Hold:
        """Raises ``HoldExpired`` (it existed and lapsed) or ``HoldNotFound``."""
        ...

    async def release(self, session_id: str, hold_id: str, *, now_ms: int) -> bool:
        """Give a held or pending hold's units back; False if there was none."""
        ...

    async def mark_pending(
        self, session_id: str, hold_id: str, user_id: str, *, until_ms: int, now_ms: int
    ) -> Hold:
        """An order now owns the hold: it lapses at ``until_ms`` instead (the order's expiry
        plus a grace, so a lost order never pins seats for ever). Raises ``HoldExpired`` or
        ``HoldNotFound`` (also when it belongs to someone else)."""
        ...

    async def confirm(self, session_id: str, hold_id: str) -> bool:
        """Paid: the hold's units become sold. False if the hold is gone (expired or
        released) — the caller decides what a late payment means."""
        ...

    async def expire(self, session_id: str, *, now_ms: int) -> list[str]:
        """Release every hold whose time is up (held or pending); return their ids."""
        ...

    async def due_sessions(self, *, now_ms: int) -> list[str]:
        """Sessions with holds due by ``now_ms`` (the sweeper expires them)."""
        ...

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
        """Sold units come back (refunds): to the public, or straight into the hold ``to``
        (a waitlist offer) without ever being available to the public. ``units`` counts
        general-admission units per tier."""
        ...

    async def hand_over(
        self,
        session_id: str,
        hold_id: str,
        *,
        offers: tuple[HoldRequest, ...],
        only_held: bool = False,
        now_ms: int,
    ) -> list[Hold]:
        """End the hold ``hold_id`` and pass its units straight into new holds (waitlist
        offers), never available to the public in between; what no offer takes goes back to
        the public. Each offer names the hold's seats it takes (``seat_ids``) or a number of
        its general-admission units (``tier_id`` + ``quantity``). All or nothing.

        Raises ``HoldExpired`` / ``HoldNotFound`` (the hold is gone: its units already went
        back), ``BadUserInput`` with ``reason`` HOLD_ORDERED (``only_held`` and an order owns
        the hold), CHANNEL_HOLD (a sales channel's hold: its units go back to the channel),
        NOT_IN_HOLD (an offer asks for what the hold does not have), or an offer's hold id
        that exists already."""
        ...

    async def snapshot(self, session_id: str, *, now_ms: int, seats: bool = True) -> Snapshot:
        """The session's version, public units per tier and (unless ``seats=False``, the
        cheap form for tier counts) every seat's state."""
        ...

    async def set_quota(self, session_id: str, tier_id: str, channel: str, units: int) -> int:
        """Set aside ``units`` of a tier for a channel (0 removes it); return the version."""
        ...

    async def counts(self, session_id: str) -> dict[str, TierCounts]:
        """Per-tier unit counts (monitoring and invariant checks)."""
        ...

    async def forget(self, session_id: str) -> None:
        """Drop the session's state entirely (tests, and sessions that ended)."""
        ...


class LedgerNotLoaded(Exception):
    """The session has no state in the ledger yet (or it was lost): load it from the database."""

    def __init__(self, session_id: str) -> None:
        super().__init__(session_id)
        self.session_id = session_id


def delta_message(
    version: int, tiers: dict[str, int], seats: dict[str, str], *, full: bool = False
) -> dict[str, object]:
    """The message published on ``channels.session_availability`` for every change:
    ``{"v": version, "t": {tier: available}, "s": {seat: "A"|"H"|"S"|"B"}, "f": full}``."""
    message: dict[str, object] = {"v": version, "t": tiers, "s": seats}
    if full:
        message["f"] = True
    return message
