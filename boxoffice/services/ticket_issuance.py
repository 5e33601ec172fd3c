"""Issuing e-tickets: one per unit of a paid order, exactly once, from the ``order.paid`` event.

``issue_for_order`` runs inside the caller's transaction: it finds the order's live items that
have no ticket yet, signs one ticket each with the current key and inserts them. The unique
``tickets.order_item_id`` makes this idempotent under at-least-once delivery: a replayed event
finds every item ticketed and changes nothing; two deliveries racing make one of them fail on
the constraint (it rolls back whole and the outbox retries it, to find the tickets there).
Each new ticket writes a ``ticket.issued`` outbox event in the same transaction.

The validity window (the signed ``nbf``/``exp``) runs from the sale's start (or issuance, if
earlier) until ``VALID_AFTER_END`` after the session ends.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.ids import new_id
from boxoffice.models.events import EventSession
from boxoffice.models.orders import ItemStatus, Order, OrderItem, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.tickets import Ticket, TicketStatus
from boxoffice.services import outbox
from boxoffice.services.outbox import Consumer
from boxoffice.services.ticket_keys import TicketKeys
from boxoffice.services.ticket_signing import sign_ticket
from boxoffice.services.tickets import new_ticket_sn, ticket_resources
from boxoffice.verifier import open_ticket

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.tickets")

CONSUMER_NAME = "ticket-issuance"
VALID_AFTER_END = timedelta(hours=6)
TICKETED_STATUSES = frozenset(
    {
        OrderStatus.PAID,
        OrderStatus.COMPLETED,
        OrderStatus.REFUNDING,
        OrderStatus.PARTIALLY_REFUNDED,
    }
)


def validity_window(performance: EventSession, now: datetime) -> tuple[datetime, datetime]:
    return min(performance.sale_starts_at, now), performance.ends_at + VALID_AFTER_END


async def new_ticket(
    session: AsyncSession,
    keys: TicketKeys,
    *,
    order: Order,
    item: OrderItem,
    performance: EventSession,
    now: datetime,
    reissued_from: str | None = None,
) -> Ticket:
    """Sign and add one ticket for ``item`` (not flushed); record the key's use."""
    not_before, expires_at = validity_window(performance, now)
    ring = keys.signing_ring()
    sn = new_ticket_sn()
    qr = sign_ticket(
        ring,
        sn=sn,
        event=order.event_id,
        session=order.session_id,
        seat=item.seat_label,
        not_before=not_before,
        expires_at=expires_at,
        now=now,
    )
    _verdict, claims = open_ticket(qr, {ring.current.kid: ring.current.public_key})
    assert claims is not None
    await keys.note_signed(session, until=expires_at)
    ticket = Ticket(
        id=new_id(),
        ticket_sn=sn,
        order_id=order.id,
        order_item_id=item.id,
        tenant_id=order.tenant_id,
        event_id=order.event_id,
        session_id=order.session_id,
        tier_id=item.tier_id,
        seat_id=item.seat_id,
        user_id=order.user_id,
        tier_name=item.tier_name,
        seat_label=item.seat_label,
        price_minor=item.paid_minor,
        currency=order.currency,
        status=TicketStatus.VALID,
        kid=claims.kid,
        nonce=claims.nonce,
        qr_payload=qr,
        issued_at=now,
        not_before=not_before,
        expires_at=expires_at,
        reissued_from=reissued_from,
        created_at=now,
        updated_at=now,
    )
    session.add(ticket)
    return ticket


async def emit_issued(session: AsyncSession, tickets: list[Ticket]) -> None:
    """One ``ticket.issued`` event per ticket, in the caller's transaction."""
    resources = await ticket_resources(session, tickets)
    for ticket in tickets:
        outbox.emit(
            session,
            topic="ticket.issued",
            aggregate_type="Ticket",
            aggregate_id=ticket.id,
            tenant_id=ticket.tenant_id,
            payload={"resource": resources[ticket.id], "userId": ticket.user_id},
        )


async def issue_for_order(session: AsyncSession, keys: TicketKeys, order_id: str) -> list[Ticket]:
    """Issue the tickets a paid order still lacks, inside ``session``'s transaction; return the
    new ones (none when the order is not paid or already fully ticketed)."""
    order = await session.get(Order, order_id)
    if order is None or order.status not in TICKETED_STATUSES:
        return []
    items = (
        await session.exec(
            select(OrderItem)
            .where(
                OrderItem.order_id == order.id,
                col(OrderItem.live).is_(True),
                OrderItem.status == ItemStatus.ACTIVE,
            )
            .order_by(col(OrderItem.id))
        )
    ).all()
    if not items:
        return []
    ticketed = set(
        (
            await session.exec(
                select(Ticket.order_item_id).where(
                    col(Ticket.order_item_id).in_([item.id for item in items])
                )
            )
        ).all()
    )
    missing = [item for item in items if item.id not in ticketed]
    if not missing:
        return []
    performance = await session.get(EventSession, order.session_id)
    assert performance is not None
    now = utcnow()
    issued = [
        await new_ticket(session, keys, order=order, item=item, performance=performance, now=now)
        for item in missing
    ]
    await session.flush()
    await emit_issued(session, issued)
    log.info("issued %d ticket(s) for order %s", len(issued), order.id)
    return issued


def issuance_consumer() -> Consumer:
    """The outbox consumer that turns ``order.paid`` into tickets."""

    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        async def issue(session: AsyncSession) -> list[Ticket]:
            return await issue_for_order(session, rt.ticket_keys, event.aggregate_id)

        await rt.db.write_retrying(issue, what=f"issue tickets of {event.aggregate_id}")

    return Consumer(CONSUMER_NAME, handle, topics=frozenset({"order.paid"}))
