"""Factories for ticketed orders and gate staff, through the real path: a paid order's
``order.paid`` event delivered to the issuance consumer."""

from __future__ import annotations

from sqlmodel import col, select

from boxoffice.models.identity import Role, Tenant, User
from boxoffice.models.orders import Order
from boxoffice.models.tickets import Ticket
from boxoffice.runtime import Runtime
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.ticket_issuance import issuance_consumer
from boxoffice.services.viewer import Viewer
from tests.helpers import make_user, viewer_for
from tests.order_factories import OnSale, paid_order


async def issue_pending(rt: Runtime) -> int:
    """Run the issuance consumer over the outbox once (what the 0.5 s job does)."""
    return await dispatch_once(rt, issuance_consumer())


async def tickets_of(rt: Runtime, order_id: str) -> list[Ticket]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(Ticket).where(Ticket.order_id == order_id).order_by(col(Ticket.issued_at))
        )
        return list(rows.all())


async def ticketed_order(
    rt: Runtime, user: User, sale: OnSale, **hold: object
) -> tuple[Order, list[Ticket]]:
    """A paid order (``seat_ids=...`` or ``tier_id=..., quantity=...``; default two seats)
    and the tickets the issuance consumer made for it."""
    if not hold:
        hold = {"seat_ids": sale.seat_ids[:2]}
    order = await paid_order(rt, user, sale.session, **hold)
    await issue_pending(rt)
    return order, await tickets_of(rt, order.id)


async def gate_staff(rt: Runtime, email: str, tenant: Tenant) -> tuple[User, Viewer]:
    user = await make_user(rt, email, Role.CHECKIN, tenant)
    return user, await viewer_for(rt, user)


async def organizer(rt: Runtime, email: str, tenant: Tenant) -> tuple[User, Viewer]:
    user = await make_user(rt, email, Role.ORGANIZER, tenant)
    return user, await viewer_for(rt, user)
