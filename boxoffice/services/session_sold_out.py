"""``session.sold_out``: written to the outbox when a sale takes a session's last ticket.

A session is sold out when every ticket of its ACTIVE tiers is sold: each tier's database
counter is full (``reserved == capacity``) and no unpaid order holds any of it (an unpaid order
may still expire and give its tickets back). Every sale ends in ``payments.mark_paid`` (online
payments, revived orders, the box office), which calls ``emit_if_sold_out`` in its transaction
after the order is PAID. The order's own tickets were unsold a moment before, so if the
session is sold out now this sale sold it out: the event is written once per transition (a
refund that frees a ticket and a later sale of it make a new one).

Cost: one aggregate over the session's tiers per paid order; only when it finds every tier
full does it take a per-session lock and look for unpaid orders. The lock (a PostgreSQL
transaction advisory lock, the last lock the transaction takes; SQLite serialises writers)
makes concurrent payments of a session's last orders check one after the other, so the last
of them sees the others paid and none of them misses the transition.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, func, literal
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.models.events import EventSession, TicketTier, TierStatus
from boxoffice.models.orders import Order, OrderItem, OrderStatus
from boxoffice.services import outbox

TOPIC = "session.sold_out"
_LOCK_CLASS = 5_010_007  # pg_advisory_xact_lock(_LOCK_CLASS, hashtext(session id))


async def emit_if_sold_out(session: AsyncSession, order: Order, now: datetime) -> bool:
    """After ``order`` became PAID in ``session``'s transaction: write ``session.sold_out``
    if its session has nothing left to sell. True when it did."""
    tiers, capacity, free = await _counters(session, order.session_id)
    if tiers == 0 or free > 0:
        return False
    if (await session.connection()).dialect.name == "postgresql":
        key = func.hashtext(literal(order.session_id))
        await session.exec(select(func.pg_advisory_xact_lock(_LOCK_CLASS, key)))
        tiers, capacity, free = await _counters(session, order.session_id)
        if tiers == 0 or free > 0:
            return False
    active_tiers = select(col(TicketTier.id)).where(
        col(TicketTier.session_id) == order.session_id,
        col(TicketTier.status) == TierStatus.ACTIVE,
    )
    unpaid = exists().where(
        col(Order.session_id) == order.session_id,
        col(Order.status) == OrderStatus.PENDING_PAYMENT,
        col(Order.id) != order.id,
        col(OrderItem.order_id) == col(Order.id),
        and_(col(OrderItem.live).is_(True), col(OrderItem.tier_id).in_(active_tiers)),
    )
    if (await session.exec(select(unpaid))).one():
        return False
    event_session = await session.get(EventSession, order.session_id)
    assert event_session is not None
    outbox.emit(
        session,
        topic=TOPIC,
        aggregate_type="Session",
        aggregate_id=event_session.id,
        tenant_id=event_session.tenant_id,
        payload={
            "resource": {
                "id": event_session.id,
                "tenantId": event_session.tenant_id,
                "eventId": event_session.event_id,
                "startsAt": event_session.starts_at.isoformat(),
                "capacity": capacity,
                "soldOutAt": now.isoformat(),
                "lastOrderId": order.id,
            }
        },
    )
    return True


async def _counters(session: AsyncSession, session_id: str) -> tuple[int, int, int]:
    """(active tiers, their capacity, their capacity not taken by an order) of a session."""
    row = (
        await session.exec(
            select(
                func.count(),
                func.coalesce(func.sum(col(TicketTier.capacity)), 0),
                func.coalesce(func.sum(col(TicketTier.capacity) - col(TicketTier.reserved)), 0),
            ).where(
                col(TicketTier.session_id) == session_id,
                col(TicketTier.status) == TierStatus.ACTIVE,
            )
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])
