"""What a session has left to sell: the one seam availability is read through.

Availability comes from the seat ledger (``services/inventory.py``), the fast gate in front of
the database: every reader (``Session.availability``, ``sessionAvailability``,
``TicketTier.available``, seat statuses) goes through ``load_availability``. Never cached;
live changes reach clients through the ``seatAvailability`` subscription.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from boxoffice.backends.seat_ledger import SeatLedger
from boxoffice.backends.seat_ledger import SeatState as LedgerState
from boxoffice.db import Database
from boxoffice.models.events import SeatStatus
from boxoffice.services import inventory
from boxoffice.services.session_rules import SessionRulesCache

LEDGER_STATUS = {
    LedgerState.AVAILABLE: SeatStatus.AVAILABLE,
    LedgerState.HELD: SeatStatus.HELD,
    LedgerState.SOLD: SeatStatus.SOLD,
    LedgerState.BLOCKED: SeatStatus.BLOCKED,
}


class TierCount(NamedTuple):
    tier_id: str
    available: int


class SeatState(NamedTuple):
    seat_id: str
    status: SeatStatus


@dataclass(frozen=True, slots=True)
class SessionAvailability:
    session_id: str
    version: int
    tiers: list[TierCount]
    seats: list[SeatState]

    def tier(self, tier_id: str) -> int | None:
        for entry in self.tiers:
            if entry.tier_id == tier_id:
                return entry.available
        return None


async def load_availability(
    *,
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    session_ids: Sequence[str],
    seats: bool = True,
) -> dict[str, SessionAvailability]:
    """Live availability of several sessions from the seat ledger (loaded from the database
    on first use). Tier counts are what the public can hold now, in the tiers' sort order;
    seats are in the seat map's drawing order, and a seat blocked outside every tier is
    BLOCKED. Served from the ledger and the cached session rules: no SQL once warm."""
    if not session_ids:
        return {}
    snapshots = await inventory.snapshots(
        db=db, ledger=ledger, rules_cache=rules_cache, session_ids=session_ids, seats=seats
    )
    rules = await rules_cache.get_many(session_ids)
    out: dict[str, SessionAvailability] = {}
    for sid in session_ids:
        snap = snapshots[sid]
        session_rules = rules.get(sid)
        ordered = (
            sorted(session_rules.tiers.values(), key=lambda t: (t.sort_order, t.tier_id))
            if session_rules
            else []
        )
        states: list[SeatState] = []
        if seats and session_rules:
            for info in sorted(session_rules.seats.values(), key=lambda s: s.ordinal):
                state = snap.seats.get(info.seat_id)
                if state is None:
                    status = SeatStatus.BLOCKED if info.blocked else SeatStatus.AVAILABLE
                else:
                    status = LEDGER_STATUS[state]
                states.append(SeatState(info.seat_id, status))
        out[sid] = SessionAvailability(
            sid,
            snap.version,
            [TierCount(t.tier_id, snap.available.get(t.tier_id, 0)) for t in ordered],
            states,
        )
    return out


async def session_availability(
    *, db: Database, ledger: SeatLedger, rules_cache: SessionRulesCache, session_id: str
) -> SessionAvailability:
    found = await load_availability(
        db=db, ledger=ledger, rules_cache=rules_cache, session_ids=[session_id]
    )
    return found[session_id]
