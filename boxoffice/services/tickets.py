"""Reading tickets: who may see one, the holder's list, and the ticket as the API shows it.

A ticket is visible to its holder, to the staff (ORGANIZER, CHECKIN) of its tenant, to
OPERATORs and to AGENTs (they print them). Everyone else gets ``NOT_FOUND``. The signed
payload (``qrPayload``) is the holder's entry credential: besides the holder only the tenant's
organizers, operators and agents (for printing) see it, never gate staff.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.db import Database
from boxoffice.errors import NotFound
from boxoffice.models.events import Event, EventSession
from boxoffice.models.identity import Role
from boxoffice.models.tickets import Ticket, TicketStatus
from boxoffice.models.venues import Seat
from boxoffice.services.catalog_access import is_agent
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.ticket_keys import TicketKeys
from boxoffice.services.viewer import Viewer

SN_DIGITS = 18

NEWEST_FIRST: list[SortKey[Ticket]] = [
    SortKey(col(Ticket.issued_at), lambda t: t.issued_at, kind="datetime", descending=True),
    SortKey(col(Ticket.id), lambda t: t.id, descending=True),
]


@dataclass(frozen=True)
class TicketDeps:
    """What ticket operations need, passed explicitly by the resolvers."""

    db: Database
    keys: TicketKeys


def new_ticket_sn() -> str:
    """``T`` + 18 random digits (about 60 bits): short enough to read out at a gate, not
    guessable, and unique under a database constraint."""
    return f"T{secrets.randbelow(10**SN_DIGITS):0{SN_DIGITS}d}"


def can_see(viewer: Viewer, ticket: Ticket) -> bool:
    if viewer.user_id is None:
        return False
    if ticket.user_id is not None and ticket.user_id == viewer.user_id:
        return True
    return is_agent(viewer) or viewer.can_staff(ticket.tenant_id, Role.ORGANIZER, Role.CHECKIN)


def can_see_payload(viewer: Viewer, ticket: Ticket) -> bool:
    if viewer.user_id is None:
        return False
    if ticket.user_id is not None and ticket.user_id == viewer.user_id:
        return True
    return is_agent(viewer) or viewer.can_staff(ticket.tenant_id, Role.ORGANIZER)


async def get_ticket(*, db: Database, viewer: Viewer, ticket_id: str) -> Ticket:
    """A ticket the caller may see (see the module docstring); ``NOT_FOUND`` otherwise."""
    viewer.require_user()
    async with db.read() as session:
        ticket = await session.get(Ticket, ticket_id)
    if ticket is None or not can_see(viewer, ticket):
        raise NotFound("No such ticket.")
    return ticket


def _mine(user_id: str, status: TicketStatus | None) -> list[Any]:
    conditions: list[Any] = [col(Ticket.user_id) == user_id]
    if status is not None:
        conditions.append(col(Ticket.status) == status)
    return conditions


async def my_tickets(
    *,
    db: Database,
    viewer: Viewer,
    status: TicketStatus | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Ticket]:
    """The caller's tickets, newest first."""
    user_id = viewer.require_user()
    size = page_size(first)
    query = apply_keyset(select(Ticket).where(*_mine(user_id, status)), NEWEST_FIRST, after=after)
    async with db.read() as session:
        rows = (await session.exec(query.limit(size + 1))).all()
    return Page.from_rows(rows, NEWEST_FIRST, size)


async def count_my_tickets(
    *, db: Database, viewer: Viewer, status: TicketStatus | None = None
) -> int:
    user_id = viewer.require_user()
    query = select(func.count()).select_from(Ticket).where(*_mine(user_id, status))
    async with db.read() as session:
        return int((await session.exec(query)).one())


async def by_sn(session: AsyncSession, sn: str, *, lock: bool = False) -> Ticket | None:
    query = select(Ticket).where(Ticket.ticket_sn == sn)
    if lock:
        query = query.with_for_update()
    return (await session.exec(query)).first()


def _money(minor: int, currency: str) -> dict[str, str]:
    return {"amount": f"{minor / 100:.2f}", "currency": currency}


async def ticket_resources(
    session: AsyncSession, tickets: Sequence[Ticket]
) -> dict[str, dict[str, Any]]:
    """Each ticket as the API shows it (outbox payloads, webhooks), by ticket id: camelCase,
    with ``eventTitle``, the session's times and ``seat {section row number label}``. Never
    the signed payload."""
    event_ids = sorted({t.event_id for t in tickets})
    session_ids = sorted({t.session_id for t in tickets})
    seat_ids = sorted({t.seat_id for t in tickets if t.seat_id})
    events = {
        e.id: e for e in (await session.exec(select(Event).where(col(Event.id).in_(event_ids))))
    }
    sessions = {
        s.id: s
        for s in await session.exec(
            select(EventSession).where(col(EventSession.id).in_(session_ids))
        )
    }
    seats = (
        {s.id: s for s in await session.exec(select(Seat).where(col(Seat.id).in_(seat_ids)))}
        if seat_ids
        else {}
    )
    out: dict[str, dict[str, Any]] = {}
    for ticket in tickets:
        event = events.get(ticket.event_id)
        performance = sessions.get(ticket.session_id)
        seat = seats.get(ticket.seat_id) if ticket.seat_id else None
        out[ticket.id] = {
            "id": ticket.id,
            "ticketSn": ticket.ticket_sn,
            "status": ticket.status.value,
            "orderId": ticket.order_id,
            "tenantId": ticket.tenant_id,
            "eventId": ticket.event_id,
            "eventTitle": event.title if event else None,
            "sessionId": ticket.session_id,
            "sessionStartsAt": performance.starts_at.isoformat() if performance else None,
            "sessionEndsAt": performance.ends_at.isoformat() if performance else None,
            "tier": {"id": ticket.tier_id, "name": ticket.tier_name},
            "seat": {
                "id": seat.id,
                "section": seat.section,
                "row": seat.row_label,
                "number": seat.number,
                "label": seat.label,
            }
            if seat
            else None,
            "price": _money(ticket.price_minor, ticket.currency),
            "issuedAt": ticket.issued_at.isoformat(),
            "validFrom": ticket.not_before.isoformat(),
            "validUntil": ticket.expires_at.isoformat(),
            "revokedAt": ticket.revoked_at.isoformat() if ticket.revoked_at else None,
            "reissuedFrom": ticket.reissued_from,
        }
    return out
