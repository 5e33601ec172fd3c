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

from sqlmodel import col, select

from boxoffice.backends.seat_ledger import SeatLedger
from boxoffice.backends.seat_ledger import SeatState as LedgerState
from boxoffice.db import Database
from boxoffice.models.events import SeatStatus, SessionSeat, TicketTier
from boxoffice.models.venues import Seat
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
    on first use). Tier counts are what the public can hold now; seats are in the seat map's
    drawing order, and a seat blocked outside every tier is BLOCKED."""
    out: dict[str, SessionAvailability] = {}
    if not session_ids:
        return out
    snapshots = await inventory.snapshots(
        db=db, ledger=ledger, rules_cache=rules_cache, session_ids=session_ids
    )
    async with db.read() as session:
        tiers = await session.exec(
            select(TicketTier.session_id, TicketTier.id)
            .where(col(TicketTier.session_id).in_(session_ids))
            .order_by(col(TicketTier.sort_order), col(TicketTier.id))
        )
        ordered_tiers: dict[str, list[str]] = {sid: [] for sid in session_ids}
        for session_id, tier_id in tiers.all():
            ordered_tiers[session_id].append(tier_id)
        for sid in session_ids:
            snap = snapshots[sid]
            out[sid] = SessionAvailability(
                sid,
                snap.version,
                [TierCount(t, snap.available.get(t, 0)) for t in ordered_tiers[sid]],
                [],
            )
        if seats:
            rows = await session.exec(
                select(SessionSeat.session_id, SessionSeat.seat_id, SessionSeat.blocked)
                .join(Seat, col(Seat.id) == col(SessionSeat.seat_id))
                .where(col(SessionSeat.session_id).in_(session_ids))
                .order_by(col(Seat.ordinal))
            )
            for session_id, seat_id, blocked in rows.all():
                state = snapshots[session_id].seats.get(seat_id)
                if state is None:
                    status = SeatStatus.BLOCKED if blocked else SeatStatus.AVAILABLE
                else:
                    status = LEDGER_STATUS[state]
                out[session_id].seats.append(SeatState(seat_id, status))
    return out


async def session_availability(
    *, db: Database, ledger: SeatLedger, rules_cache: SessionRulesCache, session_id: str
) -> SessionAvailability:
    found = await load_availability(
        db=db, ledger=ledger, rules_cache=rules_cache, session_ids=[session_id]
    )
    return found[session_id]
