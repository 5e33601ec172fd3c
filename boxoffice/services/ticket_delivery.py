"""Getting tickets to people: printing them (agents, the box office) and e-mailing them.

Printing marks each ticket printed, once: a printed ticket is a paper credential, and a second
print would make two. To print again, reissue the ticket first (the old paper is then revoked).
The check and the marking happen under row locks in one transaction, so two agents printing
the same order at once print it once.

Sending writes a ``tickets.sent`` outbox event; the notification consumer renders it (the
e-mail carries each ticket's signed payload) to the buyer's account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.models.events import Event, EventSession
from boxoffice.models.identity import Role
from boxoffice.models.orders import Order
from boxoffice.models.tickets import Ticket, TicketStatus
from boxoffice.models.venues import Venue
from boxoffice.services import audit, outbox
from boxoffice.services.catalog_access import is_agent
from boxoffice.services.tickets import TicketDeps, ticket_resources
from boxoffice.services.viewer import Viewer

MAX_PRINT_ORDERS = 50


@dataclass(frozen=True)
class PrintedTicket:
    """What goes on the paper (``qrSvg`` is drawn from ``ticket.qr_payload``)."""

    ticket: Ticket
    order_no: str
    holder_name: str | None
    event_title: str
    session_starts_at: datetime
    session_ends_at: datetime
    venue_name: str
    venue_address: str


M = TypeVar("M", Event, EventSession, Venue)


async def _by_id(session: AsyncSession, model: type[M], ids: set[str]) -> dict[str, M]:
    rows = await session.exec(select(model).where(col(model.id).in_(sorted(ids))))
    return {row.id: row for row in rows}


def _may_print(viewer: Viewer, order: Order) -> bool:
    return is_agent(viewer) or viewer.can_staff(order.tenant_id, Role.ORGANIZER)


async def print_tickets(
    *, deps: TicketDeps, viewer: Viewer, order_ids: Sequence[str]
) -> list[PrintedTicket]:
    """Print data for every VALID ticket of ``order_ids`` (in that order), marking them printed.
    AGENTs (any tenant, until per-tenant agent grants exist), the orders' tenant's ORGANIZERs
    and OPERATORs.

    Raises ``Forbidden``; ``NotFound`` (field ``orderIds``) for an unknown or another tenant's
    order; ``BadUserInput`` (field ``orderIds``) with ``reason`` NO_TICKETS (an order without
    valid tickets, e.g. unpaid) or ALREADY_PRINTED (with ``ticketSn``: reissue it first). On
    any error nothing is marked.
    """
    user_id = viewer.require_role(Role.AGENT, Role.ORGANIZER, Role.OPERATOR)
    wanted = list(dict.fromkeys(order_ids))
    if not wanted:
        raise BadUserInput("Name at least one order.", field="orderIds")
    if len(wanted) > MAX_PRINT_ORDERS:
        raise BadUserInput(f"At most {MAX_PRINT_ORDERS} orders at once.", field="orderIds")
    now = utcnow()
    async with deps.db.write() as session:
        orders = {
            o.id: o for o in await session.exec(select(Order).where(col(Order.id).in_(wanted)))
        }
        for order_id in wanted:
            order = orders.get(order_id)
            if order is None or not _may_print(viewer, order):
                raise NotFound(f"No such order: {order_id}.", field="orderIds")
        tickets = (
            await session.exec(
                select(Ticket)
                .where(col(Ticket.order_id).in_(wanted), Ticket.status == TicketStatus.VALID)
                .order_by(col(Ticket.issued_at), col(Ticket.id))
                .with_for_update()
            )
        ).all()
        by_order: dict[str, list[Ticket]] = {order_id: [] for order_id in wanted}
        for ticket in tickets:
            by_order[ticket.order_id].append(ticket)
        for order_id, found in by_order.items():
            if not found:
                raise BadUserInput(
                    f"Order {orders[order_id].order_no} has no valid tickets to print.",
                    field="orderIds",
                    reason="NO_TICKETS",
                )
            for ticket in found:
                if ticket.printed_at is not None:
                    raise BadUserInput(
                        f"Ticket {ticket.ticket_sn} was printed already; reissue it to print "
                        "it again.",
                        field="orderIds",
                        reason="ALREADY_PRINTED",
                        ticketSn=ticket.ticket_sn,
                    )
        for ticket in tickets:
            ticket.printed_at, ticket.printed_by, ticket.updated_at = now, user_id, now
            session.add(ticket)
        for order_id, found in by_order.items():
            audit.record(
                session,
                viewer=viewer,
                action="tickets.print",
                target_type="Order",
                target_id=order_id,
                tenant_id=orders[order_id].tenant_id,
                after={"tickets": [t.ticket_sn for t in found]},
            )
        events = await _by_id(session, Event, {o.event_id for o in orders.values()})
        performances = await _by_id(session, EventSession, {o.session_id for o in orders.values()})
        venues = await _by_id(session, Venue, {e.venue_id for e in events.values()})
    printed: list[PrintedTicket] = []
    for order_id in wanted:
        order = orders[order_id]
        event = events[order.event_id]
        performance = performances[order.session_id]
        venue = venues[event.venue_id]
        printed.extend(
            PrintedTicket(
                ticket=ticket,
                order_no=order.order_no,
                holder_name=order.contact_name,
                event_title=event.title,
                session_starts_at=performance.starts_at,
                session_ends_at=performance.ends_at,
                venue_name=venue.name,
                venue_address=venue.address,
            )
            for ticket in by_order[order_id]
        )
    return printed


async def send_tickets(*, deps: TicketDeps, viewer: Viewer, order_id: str) -> bool:
    """E-mail (and post in-app) the order's valid e-tickets to its buyer: the buyer, the
    tenant's ORGANIZERs, AGENTs and OPERATORs may ask (audited as ``tickets.send``; the
    buyer's own request is not).

    Raises ``NotFound`` (field ``orderId``), ``BadUserInput`` (field ``orderId``) with
    ``reason`` NO_TICKETS or NO_RECIPIENT (an order without a buyer account, e.g. sold at
    the box office).
    """
    user_id = viewer.require_user()
    async with deps.db.write() as session:
        order = await session.get(Order, order_id)
        if order is None or (order.user_id != user_id and not _may_print(viewer, order)):
            raise NotFound("No such order.", field="orderId")
        tickets = (
            await session.exec(
                select(Ticket)
                .where(Ticket.order_id == order.id, Ticket.status == TicketStatus.VALID)
                .order_by(col(Ticket.issued_at), col(Ticket.id))
            )
        ).all()
        if not tickets:
            raise BadUserInput(
                "This order has no valid tickets to send.", field="orderId", reason="NO_TICKETS"
            )
        if order.user_id is None:
            raise BadUserInput(
                "This order has no buyer account to send to.",
                field="orderId",
                reason="NO_RECIPIENT",
            )
        resources = await ticket_resources(session, tickets)
        listed = [{**resources[t.id], "qrPayload": t.qr_payload} for t in tickets]
        outbox.emit(
            session,
            topic="tickets.sent",
            aggregate_type="Order",
            aggregate_id=order.id,
            tenant_id=order.tenant_id,
            payload={
                "resource": {
                    "id": order.id,
                    "orderNo": order.order_no,
                    "eventTitle": listed[0]["eventTitle"],
                    "sessionStartsAt": listed[0]["sessionStartsAt"],
                    "tickets": listed,
                },
                "userId": order.user_id,
                "requestedBy": user_id,
            },
        )
        if order.user_id != user_id:  # staff sending on the buyer's behalf
            audit.record(
                session,
                viewer=viewer,
                action="tickets.send",
                target_type="Order",
                target_id=order.id,
                tenant_id=order.tenant_id,
                after={"tickets": [t.ticket_sn for t in tickets]},
            )
    return True
