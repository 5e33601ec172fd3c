"""What a session has left to sell: the one seam availability is read through.

Until the inventory (Redis seat ledger) lands, availability comes from the database: a tier's
``available`` is ``capacity - reserved`` and a seat is BLOCKED if blocked, else AVAILABLE, at
version 0. The inventory replaces the data source behind ``load_availability`` and nothing
else changes: every reader (``Session.availability``, ``sessionAvailability``,
``TicketTier.available``, seat statuses) goes through it. Never cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from sqlmodel import col, select

from boxoffice.db import Database
from boxoffice.models.events import SeatStatus, SessionSeat, TicketTier
from boxoffice.models.venues import Seat


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
    *, db: Database, session_ids: Sequence[str], seats: bool = True
) -> dict[str, SessionAvailability]:
    """Availability of several sessions (two queries however many). With ``seats=False``
    only the tier counts are read. Seats are in the seat map's drawing order."""
    out = {sid: SessionAvailability(sid, 0, [], []) for sid in session_ids}
    if not session_ids:
        return out
    async with db.read() as session:
        tiers = await session.exec(
            select(TicketTier.session_id, TicketTier.id, TicketTier.capacity, TicketTier.reserved)
            .where(col(TicketTier.session_id).in_(session_ids))
            .order_by(col(TicketTier.sort_order), col(TicketTier.id))
        )
        for session_id, tier_id, capacity, reserved in tiers.all():
            out[session_id].tiers.append(TierCount(tier_id, max(capacity - reserved, 0)))
        if seats:
            rows = await session.exec(
                select(SessionSeat.session_id, SessionSeat.seat_id, SessionSeat.blocked)
                .join(Seat, col(Seat.id) == col(SessionSeat.seat_id))
                .where(col(SessionSeat.session_id).in_(session_ids))
                .order_by(col(Seat.ordinal))
            )
            for session_id, seat_id, blocked in rows.all():
                status = SeatStatus.BLOCKED if blocked else SeatStatus.AVAILABLE
                out[session_id].seats.append(SeatState(seat_id, status))
    return out


async def session_availability(*, db: Database, session_id: str) -> SessionAvailability:
    return (await load_availability(db=db, session_ids=[session_id]))[session_id]
