"""Cancelling an event refunds every paid order in the background: once each, however often
the run is started, with progress the organizer can read."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, select

from boxoffice.errors import NotFound
from boxoffice.jobs import CONSUMERS, JOBS, retry_refunds
from boxoffice.models.orders import OrderStatus
from boxoffice.models.refunds import EventRefundRunStatus, Refund, RefundSource, RefundStatus
from boxoffice.models.waitlist import WaitlistStatus
from boxoffice.runtime import Runtime
from boxoffice.services import event_refunds, events
from boxoffice.services.event_refunds import event_refunds_consumer, run_event_refunds
from boxoffice.services.outbox import dispatch_once
from tests.helpers import make_tenant, make_user
from tests.order_factories import hold_for, on_sale, order_for, paid_order, pay
from tests.refund_factories import entry, flaky_refunds, join, reload_order, request, review
from tests.ticket_factories import organizer, ticketed_order


async def run_refunds(rt: Runtime, event_id: str) -> list[Refund]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(Refund).where(Refund.event_id == event_id).order_by(col(Refund.created_at))
        )
        return list(rows.all())


async def test_cancelling_an_event_refunds_every_paid_order_once(rt: Runtime):
    # given three paid orders — one with a refund request awaiting review, one partly refunded
    sale = await on_sale(rt)
    buyers = [await make_user(rt, f"fan{i}@example.com") for i in range(3)]
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    plain = await paid_order(rt, buyers[0], sale.session, tier_id=sale.ga.id, quantity=2)
    asking, asking_tickets = await ticketed_order(rt, buyers[1], sale, seat_ids=sale.seat_ids[:2])
    pending = await request(rt, buyers[1], asking, [asking_tickets[0].id])
    partly, partly_tickets = await ticketed_order(rt, buyers[2], sale, seat_ids=sale.seat_ids[2:5])
    unpaid = await order_for(
        rt, buyers[0], await hold_for(rt, buyers[0], sale.session, tier_id=sale.ga.id, quantity=1)
    )
    with flaky_refunds(rt) as flaky:
        first_part = await review(
            rt, staff, await request(rt, buyers[2], partly, [partly_tickets[0].id])
        )
        flaky.calls.clear()
        # when the organizer cancels the event and the run is started three times, twice at once
        await events.cancel_event(
            db=rt.db, cache=rt.catalog_cache, viewer=staff, event_id=sale.event.id, reason="storm"
        )
        assert "event-refunds" in [c.name for c in CONSUMERS]
        assert await dispatch_once(rt, event_refunds_consumer()) >= 1
        progress = await event_refunds.event_refund_progress(
            db=rt.db, viewer=staff, event_id=sale.event.id
        )
        assert progress is not None
        run_id = progress.run.id
        await asyncio.gather(
            run_event_refunds(rt.refund_deps, run_id), run_event_refunds(rt.refund_deps, run_id)
        )
    # then every paid order is fully refunded, each by one provider refund, without fee
    for order in (plain, asking, partly):
        refunded = await reload_order(rt, order.id)
        assert refunded.status is OrderStatus.REFUNDED
        assert refunded.refunded_minor == order.total_minor
    made = [r for r in await run_refunds(rt, sale.event.id) if r.run_id == run_id]
    assert sorted(r.order_id for r in made) == sorted([plain.id, asking.id, partly.id])
    assert {(r.source, r.status, r.fee_minor) for r in made} == {
        (RefundSource.EVENT_CANCELLED, RefundStatus.COMPLETED, 0)
    }
    assert sorted(flaky.calls) == sorted(r.refund_no for r in made)
    # and the request that awaited review became the whole order's refund
    widened = next(r for r in made if r.order_id == asking.id)
    assert widened.id == pending.id and len(widened.item_ids) == 2
    # and the unpaid order is left to expire; progress is complete
    assert (await reload_order(rt, unpaid.id)).status is OrderStatus.PENDING_PAYMENT
    progress = await event_refunds.event_refund_progress(
        db=rt.db, viewer=staff, event_id=sale.event.id
    )
    assert progress is not None
    assert progress.run.status is EventRefundRunStatus.COMPLETED
    assert (progress.total, progress.completed, progress.failed) == (3, 3, 0)
    assert progress.refunded_minor == (
        plain.total_minor + asking.total_minor + partly.total_minor - first_part.amount_minor
    )


async def test_a_refund_run_the_provider_refuses_stays_open_and_resumes(rt: Runtime):
    # given a cancelled event whose only paid order the provider refuses to refund at first
    sale = await on_sale(rt)
    buyer = await make_user(rt, "fan@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order = await pay(
        rt,
        buyer,
        await order_for(
            rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
        ),
    )
    with flaky_refunds(rt) as flaky:
        flaky.failing = "SYSTEM_ERROR"
        await events.cancel_event(
            db=rt.db, cache=rt.catalog_cache, viewer=staff, event_id=sale.event.id
        )
        await dispatch_once(rt, event_refunds_consumer())
        progress = await event_refunds.event_refund_progress(
            db=rt.db, viewer=staff, event_id=sale.event.id
        )
        assert progress is not None
        assert progress.run.status is EventRefundRunStatus.RUNNING
        assert (progress.total, progress.failed) == (1, 1)
        assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDING
        # when the provider recovers and the refund retry job comes round
        flaky.failing = None
        [refund] = await run_refunds(rt, sale.event.id)
        async with rt.db.write() as session:
            row = await session.get(Refund, refund.id)
            assert row is not None and row.next_attempt_at is not None
            row.next_attempt_at = row.next_attempt_at.replace(year=2000)
            session.add(row)
        assert "retry-refunds" in [job.name for job in JOBS]
        assert await retry_refunds(rt) == 1
    assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDED
    finished = await event_refunds.event_refund_progress(
        db=rt.db, viewer=staff, event_id=sale.event.id
    )
    assert finished is not None and finished.run.status is EventRefundRunStatus.COMPLETED
    assert flaky.calls == [refund.refund_no] * 2


async def test_refund_progress_is_for_the_events_organizers(rt: Runtime):
    sale = await on_sale(rt)
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    other = await make_tenant(rt, "Other Club")
    _stranger, stranger = await organizer(rt, "other@club.test", other)
    assert (
        await event_refunds.event_refund_progress(db=rt.db, viewer=staff, event_id=sale.event.id)
        is None
    )
    with pytest.raises(NotFound):
        await event_refunds.event_refund_progress(db=rt.db, viewer=stranger, event_id=sale.event.id)


async def test_a_cancelled_events_seats_are_offered_to_nobody(rt: Runtime):
    # given a sold-out tier with someone waiting
    sale = await on_sale(rt, ga_capacity=1)
    buyer = await make_user(rt, "fan@example.com")
    waiter = await make_user(rt, "waiter@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    waiting = await join(rt, waiter, sale.session.id, sale.ga.id)
    # when the event is cancelled and its orders refunded
    await events.cancel_event(
        db=rt.db, cache=rt.catalog_cache, viewer=staff, event_id=sale.event.id
    )
    await dispatch_once(rt, event_refunds_consumer())
    # then the money went back, and no offer was made for a show that will not happen
    assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDED
    assert (await entry(rt, waiting.id)).status is WaitlistStatus.WAITING
