"""Completing orders: PAID → COMPLETED once their session ended some days ago.

``complete_due_orders`` (the ``complete-orders`` job) takes paid orders whose session ended
more than ``after`` ago, in batches: each batch is ONE transaction that locks the orders (in
id order), re-checks them (still PAID, session still ended long enough, event and session not
cancelled: a cancelled event's orders are refunded instead), moves them through the state
machine and writes ``order.completed`` to the outbox; after the commit ``orderUpdates``
subscribers are told. Orders that changed meanwhile are skipped, so running twice, or a
second process at once, completes each order once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.models.events import Event, EventSession, EventStatus, SessionStatus
from boxoffice.models.orders import Order, OrderItem, OrderStatus
from boxoffice.services import order_states, outbox
from boxoffice.services.orders import OrderDeps, order_resource, publish_order

log = logging.getLogger("boxoffice.orders")

COMPLETED_TOPIC = "order.completed"
BATCH_SIZE = 100
MAX_BATCHES = 20  # per run: the next run goes on


def _due(cutoff: datetime) -> list[ColumnElement[bool]]:
    return [
        col(Order.status) == OrderStatus.PAID,
        col(EventSession.id) == col(Order.session_id),
        col(EventSession.ends_at) <= cutoff,
        col(EventSession.status) != SessionStatus.CANCELLED,
        col(Event.id) == col(Order.event_id),
        col(Event.status) != EventStatus.CANCELLED,
    ]


async def _complete_batch(
    session: AsyncSession, order_ids: list[str], cutoff: datetime, now: datetime
) -> list[Order]:
    orders = list(
        (
            await session.exec(
                select(Order)
                .where(col(Order.id).in_(order_ids), *_due(cutoff))
                .order_by(col(Order.id))
                .with_for_update(of=Order)
                .execution_options(populate_existing=True)
            )
        ).all()
    )
    if not orders:
        return []
    items: dict[str, list[OrderItem]] = defaultdict(list)
    for item in (
        await session.exec(
            select(OrderItem)
            .where(col(OrderItem.order_id).in_([o.id for o in orders]))
            .order_by(col(OrderItem.id))
        )
    ).all():
        items[item.order_id].append(item)
    for order in orders:
        order_states.check(order.id, order.status, OrderStatus.COMPLETED)
        order.status = OrderStatus.COMPLETED
        order.completed_at = order.updated_at = now
        session.add(order)
        outbox.emit(
            session,
            topic=COMPLETED_TOPIC,
            aggregate_type="Order",
            aggregate_id=order.id,
            tenant_id=order.tenant_id,
            payload={"resource": order_resource(order, items[order.id]), "userId": order.user_id},
        )
    return orders


async def complete_due_orders(
    deps: OrderDeps,
    *,
    after: timedelta,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
) -> int:
    """Complete paid orders whose session ended more than ``after`` ago; how many it did."""
    now = utcnow()
    cutoff = now - after
    completed = 0
    last_id = ""
    for _ in range(max_batches):
        async with deps.db.read() as session:
            batch = list(
                (
                    await session.exec(
                        select(Order.id)
                        .where(col(Order.id) > last_id, *_due(cutoff))
                        .order_by(col(Order.id))
                        .limit(batch_size)
                    )
                ).all()
            )
        if not batch:
            break
        last_id = batch[-1]

        async def complete(session: AsyncSession, ids: list[str] = batch) -> list[Order]:
            return await _complete_batch(session, ids, cutoff, now)

        done = await deps.db.write_retrying(complete, what="complete orders")
        for order in done:
            await publish_order(deps.broker, order)
        completed += len(done)
        if len(batch) < batch_size:
            break
    if completed:
        log.info("completed %d orders of sessions ended before %s", completed, cutoff.isoformat())
    return completed
