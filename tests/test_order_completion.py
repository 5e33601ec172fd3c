"""PAID → COMPLETED some days after the session ended (the ``complete-orders`` job)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from sqlmodel import col, select

from boxoffice.backends.broker import channels
from boxoffice.clock import utcnow
from boxoffice.errors import OrderStateInvalid
from boxoffice.jobs import JOBS, complete_orders
from boxoffice.models.events import EventSession
from boxoffice.models.identity import User
from boxoffice.models.orders import Order, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services import events, orders
from boxoffice.services.order_completion import COMPLETED_TOPIC, complete_due_orders
from tests.catalog_factories import OPERATOR
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import OnSale, hold_for, on_sale, order_for, paid_order
from tests.refund_factories import request


async def _ended(rt: Runtime, sale: OnSale, days_ago: float) -> None:
    """Move the session so that it ended ``days_ago`` days ago."""
    ends = utcnow() - timedelta(days=days_ago)
    async with rt.db.write() as s:
        row = await s.get(EventSession, sale.session.id)
        assert row is not None
        row.starts_at, row.ends_at = ends - timedelta(hours=3), ends
        s.add(row)


async def _status(rt: Runtime, order_id: str) -> Order:
    async with rt.db.read() as s:
        order = await s.get(Order, order_id)
    assert order is not None
    return order


async def _completed_events(rt: Runtime) -> list[OutboxEvent]:
    async with rt.db.read() as s:
        return list(
            (
                await s.exec(
                    select(OutboxEvent)
                    .where(col(OutboxEvent.topic) == COMPLETED_TOPIC)
                    .order_by(col(OutboxEvent.seq))
                )
            ).all()
        )


async def _users(rt: Runtime, n: int) -> list[User]:
    return [await make_user(rt, f"fan{i}@completion.example") for i in range(n)]


async def test_paid_orders_complete_seven_days_after_their_session_ended(rt: Runtime):
    # given a session that ended 8 days ago and one that ended 6 days ago, each with a paid
    # order; the old one also has an unpaid order and a cancelled one
    tenant = await make_tenant(rt, "Completion Club")
    old, recent = await on_sale(rt, tenant=tenant), await on_sale(rt, tenant=tenant)
    buyer, other, canceller = await _users(rt, 3)
    old_paid = await paid_order(rt, buyer, old.session, tier_id=old.ga.id, quantity=2)
    recent_paid = await paid_order(rt, buyer, recent.session, tier_id=recent.ga.id, quantity=1)
    unpaid = await order_for(
        rt, other, await hold_for(rt, other, old.session, tier_id=old.ga.id, quantity=1)
    )
    to_cancel = await order_for(
        rt, canceller, await hold_for(rt, canceller, old.session, tier_id=old.ga.id, quantity=1)
    )
    await orders.cancel_order(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, canceller),
        order_id=to_cancel.id,
        reason=None,
    )
    assert old_paid.status == recent_paid.status == OrderStatus.PAID
    await _ended(rt, old, days_ago=8)
    await _ended(rt, recent, days_ago=6)

    async with rt.backends.broker.subscribe(channels.order(old_paid.id)) as messages:
        updates = messages.__aiter__()
        await asyncio.sleep(0.1)
        # when the job runs
        assert await complete_orders(rt) == 1
        # then orderUpdates subscribers hear of it
        published = orjson.loads(await asyncio.wait_for(updates.__anext__(), 5))
    assert published == {"id": old_paid.id, "status": "COMPLETED"}

    # then only the paid order of the session that ended 8 days ago is COMPLETED
    completed = await _status(rt, old_paid.id)
    assert completed.status == OrderStatus.COMPLETED
    assert completed.completed_at is not None
    assert (await _status(rt, recent_paid.id)).status == OrderStatus.PAID
    assert (await _status(rt, unpaid.id)).status == OrderStatus.PENDING_PAYMENT
    assert (await _status(rt, to_cancel.id)).status == OrderStatus.CANCELLED
    # and the outbox has one order.completed event with the order as the API shows it
    [event] = await _completed_events(rt)
    assert event.aggregate_id == old_paid.id
    assert event.payload["resource"]["status"] == "COMPLETED"
    assert len(event.payload["resource"]["items"]) == 2
    assert event.payload["userId"] == buyer.id

    # when it runs again: nothing changes
    assert await complete_orders(rt) == 0
    assert len(await _completed_events(rt)) == 1
    assert (await _status(rt, old_paid.id)).completed_at == completed.completed_at
    assert (await _status(rt, recent_paid.id)).status == OrderStatus.PAID

    # and a completed order can no longer be refunded
    with pytest.raises(OrderStateInvalid):
        await request(rt, buyer, completed)
    assert (await _status(rt, old_paid.id)).status == OrderStatus.COMPLETED


@pytest.mark.settings(order_complete_after_days=5)
async def test_the_delay_is_a_setting(rt: Runtime):
    # given a paid order of a session that ended 6 days ago, and a 5-day delay
    sale = await on_sale(rt)
    [buyer] = await _users(rt, 1)
    order = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    await _ended(rt, sale, days_ago=6)
    # when the job runs, then it is COMPLETED
    assert await complete_orders(rt) == 1
    assert (await _status(rt, order.id)).status == OrderStatus.COMPLETED


async def test_orders_complete_in_batches(rt: Runtime):
    # given more paid orders of an old session than one batch holds
    sale = await on_sale(rt, ga_capacity=10)
    buyers = await _users(rt, 5)
    paid = [await paid_order(rt, b, sale.session, tier_id=sale.ga.id, quantity=1) for b in buyers]
    await _ended(rt, sale, days_ago=30)
    # when a run may do two batches of two
    done = await complete_due_orders(
        rt.order_deps, after=timedelta(days=7), batch_size=2, max_batches=2
    )
    # then it completes four, and the next run the last one
    assert done == 4
    assert await complete_due_orders(rt.order_deps, after=timedelta(days=7), batch_size=2) == 1
    statuses = {(await _status(rt, o.id)).status for o in paid}
    assert statuses == {OrderStatus.COMPLETED}
    assert len(await _completed_events(rt)) == 5


def test_the_job_is_registered():
    assert "complete-orders" in {job.name for job in JOBS}


async def test_orders_of_a_cancelled_event_are_left_to_its_refunds(rt: Runtime):
    # given a paid order of an event cancelled before its refunds ran, the session long over
    sale = await on_sale(rt)
    [buyer] = await _users(rt, 1)
    order = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    await events.cancel_event(
        db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=sale.event.id, reason="rain"
    )
    await _ended(rt, sale, days_ago=8)
    # when the job runs, then the order is not completed (the refund run takes it)
    assert await complete_orders(rt) == 0
    assert (await _status(rt, order.id)).status == OrderStatus.PAID
