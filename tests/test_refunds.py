"""Refunds: requests, review, the provider's refund and everything that follows it — once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from decimal import Decimal

import pytest
from sqlmodel import col, select

from boxoffice.backends.seat_ledger import SeatState
from boxoffice.errors import NotFound, OrderStateInvalid
from boxoffice.models.coupons import UserCoupon, UserCouponStatus
from boxoffice.models.events import TicketTier
from boxoffice.models.identity import Tenant
from boxoffice.models.notifications import Notification
from boxoffice.models.orders import ItemStatus, OrderItem, OrderStatus, Payment, PaymentStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.refunds import RefundSource, RefundStatus
from boxoffice.models.tickets import TicketStatus
from boxoffice.providers.payments import PaymentChannel
from boxoffice.runtime import Runtime
from boxoffice.services import (
    box_office,
    check_ins,
    inventory,
    payments,
    refund_policies,
    refunds,
    scanner_bundles,
)
from boxoffice.services.notifications import notification_consumer
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.refund_policies import FeeTierSpec
from boxoffice.services.refund_processing import late_payment_consumer, retry_due_refunds
from tests.coupon_factories import claimed, make_coupon, organizer_of
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import (
    hold_for,
    on_sale,
    order_for,
    paid_order,
    pay,
    sandbox_callback,
    start_sandbox_payment,
)
from tests.refund_factories import (
    flaky_refunds,
    refund_row,
    refunds_of,
    reload_order,
    request,
    review,
)
from tests.ticket_factories import (
    gate_staff,
    issue_pending,
    organizer,
    ticketed_order,
    tickets_of,
)


async def reserved(rt: Runtime, tier_id: str) -> int:
    async with rt.db.read() as session:
        tier = await session.get(TicketTier, tier_id)
    assert tier is not None
    return tier.reserved


async def seat_states(rt: Runtime, session_id: str) -> dict[str, SeatState]:
    snap = await inventory.snapshot(
        db=rt.db, ledger=rt.backends.ledger, rules_cache=rt.session_rules, session_id=session_id
    )
    return snap.seats


async def topics(rt: Runtime, topic: str) -> list[OutboxEvent]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def set_policy(
    rt: Runtime,
    tenant: Tenant,
    *,
    event_id: str | None = None,
    refundable: bool = True,
    deadline_hours: int = 48,
    fee_tiers: Sequence[FeeTierSpec] = (),
) -> None:
    await refund_policies.set_refund_policy(
        db=rt.db,
        viewer=organizer_of(tenant),
        tenant_id=tenant.id,
        event_id=event_id,
        refundable=refundable,
        deadline_hours=deadline_hours,
        fee_tiers=fee_tiers,
    )


async def test_a_partial_refund_revokes_only_the_named_tickets_and_returns_only_their_seats(
    rt: Runtime,
):
    # given a paid order of three seats, a 10 % + 5.00 per ticket fee, and a gate
    sale = await on_sale(rt)
    buyer = await make_user(rt, "buyer@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    _gate, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    await set_policy(rt, sale.tenant, fee_tiers=[FeeTierSpec(0, Decimal("10"), Decimal("5.00"))])
    seats = sale.seat_ids[:3]
    order, tickets = await ticketed_order(rt, buyer, sale, seat_ids=seats)
    by_seat = {t.seat_id: t for t in tickets}
    named = [by_seat[seats[0]], by_seat[seats[1]]]
    before = await reserved(rt, sale.seated.id)
    # when the buyer asks for two of them back and the organizer approves
    quote = await refunds.quote_refund(
        deps=rt.refund_deps,
        viewer=await viewer_for(rt, buyer),
        order_id=order.id,
        ticket_ids=[t.id for t in named],
    )
    refund = await request(rt, buyer, order, [t.id for t in named])
    assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDING
    done = await review(rt, staff, refund)
    # then the refund is complete and adds up: amount + fee = what the two units cost
    assert done.status is RefundStatus.COMPLETED
    assert (done.cost_minor, done.fee_minor, done.amount_minor) == (76000, 8600, 67400)
    assert (quote.cost_minor, quote.fee_minor, quote.amount_minor) == (76000, 8600, 67400)
    async with rt.db.read() as session:
        items = (await session.exec(select(OrderItem).where(OrderItem.order_id == order.id))).all()
    refunded_items = [i for i in items if i.status is ItemStatus.REFUNDED]
    assert sorted(i.seat_id or "" for i in refunded_items) == sorted(seats[:2])
    assert done.amount_minor + done.fee_minor == sum(i.paid_minor for i in refunded_items)
    assert not any(i.live for i in refunded_items)
    paid = await reload_order(rt, order.id)
    assert paid.status is OrderStatus.PARTIALLY_REFUNDED
    assert paid.refunded_minor == done.amount_minor
    # and only the named tickets are on the revocation list; the gate refuses them
    bundle = await scanner_bundles.bundle_for_session(
        deps=rt.ticket_deps, viewer=gate, session_id=sale.session.id
    )
    assert sorted(bundle.revoked) == sorted(t.ticket_sn for t in named)
    refused = await check_ins.check_in(
        deps=rt.ticket_deps, viewer=gate, payload=named[0].qr_payload
    )
    assert (refused.ok, refused.code) == (False, "TICKET_REVOKED")
    kept = by_seat[seats[2]]
    assert (await check_ins.check_in(deps=rt.ticket_deps, viewer=gate, payload=kept.qr_payload)).ok
    # and only their seats came back, to the public (nobody waits), and to the database
    states = await seat_states(rt, sale.session.id)
    assert [states[s] for s in seats] == [SeatState.AVAILABLE, SeatState.AVAILABLE, SeatState.SOLD]
    assert await reserved(rt, sale.seated.id) == before - 2
    assert len(await topics(rt, "refund.completed")) == 1
    assert {e.aggregate_id for e in await topics(rt, "ticket.revoked")} == {t.id for t in named}


async def test_a_whole_refund_gives_everything_back(rt: Runtime):
    # given a paid general-admission order of two
    sale = await on_sale(rt)
    buyer = await make_user(rt, "whole@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, tickets = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=2)
    # when all of it is refunded
    done = await review(rt, staff, await request(rt, buyer, order))
    # then the order, its payment and its tickets are all refunded, the units back on sale
    assert done.status is RefundStatus.COMPLETED
    assert done.amount_minor == order.total_minor and done.fee_minor == 0
    refunded = await reload_order(rt, order.id)
    assert (refunded.status, refunded.refunded_minor) == (OrderStatus.REFUNDED, order.total_minor)
    assert {t.status for t in await tickets_of(rt, order.id)} == {TicketStatus.REVOKED}
    async with rt.db.read() as session:
        payment = (await session.exec(select(Payment).where(Payment.order_id == order.id))).one()
    assert payment.status is PaymentStatus.REFUNDED
    snap = await inventory.snapshot(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        session_id=sale.session.id,
    )
    assert snap.available[sale.ga.id] == 10
    assert await reserved(rt, sale.ga.id) == 0
    assert len(tickets) == 2


async def test_used_tickets_and_late_requests_answer_order_state_invalid(rt: Runtime):
    # given a paid order of two seats, one of them already checked in
    sale = await on_sale(rt)
    buyer = await make_user(rt, "used@example.com")
    _gate, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    order, [used, unused] = await ticketed_order(rt, buyer, sale)
    assert (await check_ins.check_in(deps=rt.ticket_deps, viewer=gate, payload=used.qr_payload)).ok
    # then refunding the used one, or the whole order, is refused
    for ticket_ids in ([used.id], None):
        with pytest.raises(OrderStateInvalid) as refused:
            await request(rt, buyer, order, ticket_ids)
        assert refused.value.details["reason"] == "TICKET_USED"
        assert refused.value.code == "ORDER_STATE_INVALID"
    # and once the deadline is 200 hours before a session 7 days away, nothing can be
    await set_policy(rt, sale.tenant, deadline_hours=200)
    with pytest.raises(OrderStateInvalid) as late:
        await request(rt, buyer, order, [unused.id])
    assert late.value.details["reason"] == "REFUND_DEADLINE_PASSED"
    # and an event whose rules forbid refunds refuses them too, whatever its tenant says
    await set_policy(rt, sale.tenant, event_id=sale.event.id, refundable=False)
    with pytest.raises(OrderStateInvalid) as forbidden:
        await request(rt, buyer, order, [unused.id])
    assert forbidden.value.details["reason"] == "REFUNDS_NOT_ALLOWED"
    # and nothing changed
    assert (await reload_order(rt, order.id)).status is OrderStatus.PAID
    assert await refunds_of(rt, order.id) == []


async def test_a_ticket_checked_in_after_the_request_cannot_be_approved(rt: Runtime):
    sale = await on_sale(rt)
    buyer = await make_user(rt, "sneaky@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    _gate, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    order, [ticket, _other] = await ticketed_order(rt, buyer, sale)
    refund = await request(rt, buyer, order, [ticket.id])
    assert (
        await check_ins.check_in(deps=rt.ticket_deps, viewer=gate, payload=ticket.qr_payload)
    ).ok
    with flaky_refunds(rt) as flaky, pytest.raises(OrderStateInvalid) as refused:
        await review(rt, staff, refund)
    assert refused.value.details["reason"] == "TICKET_USED" and flaky.calls == []
    assert (await refund_row(rt, refund.id)).status is RefundStatus.PENDING
    rejected = await review(rt, staff, refund, approve=False, opinion="you came to the show")
    assert rejected.status is RefundStatus.REJECTED


async def test_an_unpaid_or_someone_elses_order_cannot_be_refunded(rt: Runtime):
    sale = await on_sale(rt)
    buyer = await make_user(rt, "owner@example.com")
    stranger = await make_user(rt, "stranger@example.com")
    unpaid = await order_for(
        rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    with pytest.raises(OrderStateInvalid) as refused:
        await request(rt, buyer, unpaid)
    assert refused.value.details["reason"] == "NOT_REFUNDABLE_STATUS"
    paid = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    with pytest.raises(NotFound):
        await request(rt, stranger, paid)
    other_tenant = await make_tenant(rt, "Other Club")
    _boss, other_staff = await organizer(rt, "other@club.test", other_tenant)
    refund = await request(rt, buyer, paid)
    with pytest.raises(NotFound):
        await review(rt, other_staff, refund)


async def test_one_open_refund_per_order_even_when_requests_race(rt: Runtime):
    # given a paid order
    sale = await on_sale(rt)
    buyer = await make_user(rt, "racer@example.com")
    order = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=3)
    # when eight requests race
    results = await asyncio.gather(
        *(request(rt, buyer, order) for _ in range(8)), return_exceptions=True
    )
    # then one refund is open; the others answer ORDER_STATE_INVALID
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, OrderStateInvalid)]
    assert len(made) == 1 and len(refused) == 7
    assert all(r.details["reason"] == "REFUND_IN_PROGRESS" for r in refused)
    assert len(await refunds_of(rt, order.id)) == 1


async def test_a_rejected_refund_puts_the_order_back(rt: Runtime):
    sale = await on_sale(rt)
    buyer = await make_user(rt, "rejected@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, tickets = await ticketed_order(rt, buyer, sale)
    refund = await request(rt, buyer, order, [tickets[0].id])
    rejected = await review(rt, staff, refund, approve=False, opinion="too late for this show")
    assert (rejected.status, rejected.opinion) == (RefundStatus.REJECTED, "too late for this show")
    await dispatch_once(rt, notification_consumer())
    async with rt.db.read() as session:
        told = (
            await session.exec(select(Notification).where(Notification.user_id == buyer.id))
        ).all()
    assert {"refund.requested", "refund.rejected"} <= {n.topic for n in told}
    assert any("too late for this show" in n.body for n in told)
    assert (await reload_order(rt, order.id)).status is OrderStatus.PAID
    assert {t.status for t in await tickets_of(rt, order.id)} == {TicketStatus.VALID}
    with pytest.raises(OrderStateInvalid):
        await review(rt, staff, refund)
    # a new request is possible afterwards
    assert (await request(rt, buyer, order)).status is RefundStatus.PENDING


async def test_a_failed_provider_refund_changes_nothing_and_a_retry_completes_it_once(rt: Runtime):
    # given an approved refund the provider refuses
    sale = await on_sale(rt)
    buyer = await make_user(rt, "failed@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, tickets = await ticketed_order(rt, buyer, sale)
    with flaky_refunds(rt) as flaky:
        flaky.failing = "INSUFFICIENT_MERCHANT_BALANCE"
        refund = await request(rt, buyer, order)
        failed = await review(rt, staff, refund)
        # then it is FAILED, retryable, and nothing else moved
        assert failed.status is RefundStatus.FAILED
        assert failed.failure == "INSUFFICIENT_MERCHANT_BALANCE"
        assert failed.next_attempt_at is not None
        assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDING
        assert {t.status for t in await tickets_of(rt, order.id)} == {TicketStatus.VALID}
        states = await seat_states(rt, sale.session.id)
        assert {states[t.seat_id or ""] for t in tickets} == {SeatState.SOLD}
        assert await reserved(rt, sale.seated.id) == 2
        assert await topics(rt, "refund.completed") == []
        # and an unreachable provider keeps it APPROVED (the money may be on its way)
        flaky.failing, flaky.unreachable = None, True
        pending = await refunds.retry_refund(deps=rt.refund_deps, viewer=staff, refund_id=refund.id)
        assert pending.status is RefundStatus.APPROVED and pending.provider_status == "PENDING"
        # when the provider recovers and the organizer retries
        flaky.unreachable = False
        done = await refunds.retry_refund(deps=rt.refund_deps, viewer=staff, refund_id=refund.id)
        # then it completes, with the same refund number every time, once
        assert done.status is RefundStatus.COMPLETED
        assert flaky.calls == [refund.refund_no] * 3
        with pytest.raises(OrderStateInvalid):
            await refunds.retry_refund(deps=rt.refund_deps, viewer=staff, refund_id=refund.id)
        assert await retry_due_refunds(rt.refund_deps) == []
        assert len(flaky.calls) == 3
    assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDED
    assert await reserved(rt, sale.seated.id) == 0
    assert len(await topics(rt, "refund.completed")) == 1
    assert (await refund_row(rt, refund.id)).attempts == 3


async def test_the_retry_job_finishes_a_refund_the_provider_refused_at_first(rt: Runtime):
    sale = await on_sale(rt)
    buyer = await make_user(rt, "job@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    with flaky_refunds(rt) as flaky:
        flaky.failing = "SYSTEM_ERROR"
        refund = await review(rt, staff, await request(rt, buyer, order))
        assert refund.status is RefundStatus.FAILED
        flaky.failing = None
        # the attempt is not due yet: the job leaves it
        assert await retry_due_refunds(rt.refund_deps) == []
        async with rt.db.write() as session:
            row = await session.get(type(refund), refund.id)
            assert row is not None and row.next_attempt_at is not None
            row.next_attempt_at = row.next_attempt_at.replace(year=2000)
            session.add(row)
        [retried] = await retry_due_refunds(rt.refund_deps)
    assert retried.status is RefundStatus.COMPLETED
    assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDED


async def test_concurrent_approvals_make_one_provider_refund_and_one_set_of_effects(rt: Runtime):
    # given a refund of two of three seats awaiting review
    sale = await on_sale(rt)
    buyer = await make_user(rt, "twice@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, tickets = await ticketed_order(rt, buyer, sale, seat_ids=sale.seat_ids[:3])
    refund = await request(rt, buyer, order, [tickets[0].id, tickets[1].id])
    with flaky_refunds(rt) as flaky:
        # when six approvals race
        results = await asyncio.gather(*(review(rt, staff, refund) for _ in range(6)))
    # then the provider was asked once, and everything happened once
    assert flaky.calls == [refund.refund_no]
    assert all(r.id == refund.id for r in results)
    final = await refund_row(rt, refund.id)
    assert final.status is RefundStatus.COMPLETED and final.attempts == 1
    paid = await reload_order(rt, order.id)
    assert paid.refunded_minor == final.amount_minor
    assert paid.status is OrderStatus.PARTIALLY_REFUNDED
    assert await reserved(rt, sale.seated.id) == 1
    assert len(await topics(rt, "refund.completed")) == 1
    assert len(await topics(rt, "ticket.revoked")) == 2


async def test_racing_retries_and_the_job_make_one_provider_call(rt: Runtime):
    # given a refund the provider refused once
    sale = await on_sale(rt)
    buyer = await make_user(rt, "retries@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order = await paid_order(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=2)
    with flaky_refunds(rt) as flaky:
        flaky.failing = "SYSTEM_ERROR"
        refund = await review(rt, staff, await request(rt, buyer, order))
        flaky.failing = None
        async with rt.db.write() as session:
            row = await session.get(type(refund), refund.id)
            assert row is not None and row.next_attempt_at is not None
            row.next_attempt_at = row.next_attempt_at.replace(year=2000)
            session.add(row)
        # when five retries and the retry job race
        retries = [
            refunds.retry_refund(deps=rt.refund_deps, viewer=staff, refund_id=refund.id)
            for _ in range(5)
        ]
        await asyncio.gather(*retries, retry_due_refunds(rt.refund_deps), return_exceptions=True)
    # then one more provider call was made and the refund completed once
    assert flaky.calls == [refund.refund_no] * 2
    assert (await refund_row(rt, refund.id)).status is RefundStatus.COMPLETED
    assert len(await topics(rt, "refund.completed")) == 1
    assert await reserved(rt, sale.ga.id) == 0


async def test_a_box_office_sale_is_refunded_at_the_counter(rt: Runtime):
    sale = await on_sale(rt)
    _boss, staff = await organizer(rt, "counter@club.test", sale.tenant)
    order = await box_office.sell(
        deps=rt.order_deps,
        viewer=staff,
        session_id=sale.session.id,
        tier_id=sale.ga.id,
        quantity=2,
        seat_ids=None,
        buyer_name="Walk-in",
        buyer_phone=None,
        payment_method=box_office.BoxOfficePayment.CASH,
        ticket_keys=rt.ticket_keys,
    )
    with flaky_refunds(rt) as flaky:
        refund = await refunds.request_refund(
            deps=rt.refund_deps, viewer=staff, order_id=order.id, ticket_ids=None, reason=None
        )
        done = await review(rt, staff, refund)
    assert flaky.calls == []
    assert (done.status, done.method) == (RefundStatus.COMPLETED, "CASH")
    assert (await reload_order(rt, order.id)).status is OrderStatus.REFUNDED
    assert {t.status for t in await tickets_of(rt, order.id)} == {TicketStatus.REVOKED}


async def test_a_second_payment_of_a_paid_order_is_refunded_automatically(rt: Runtime):
    # given an order paid twice (two payments started, both completed)
    sale = await on_sale(rt)
    buyer = await make_user(rt, "double@example.com")
    order = await order_for(
        rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    first = await start_sandbox_payment(rt, buyer, order)
    second = await start_sandbox_payment(rt, buyer, order)
    for payment in (first, second):
        await payments.handle_callback(
            deps=rt.payment_deps,
            channel=PaymentChannel.SANDBOX,
            request=await sandbox_callback(rt, payment),
            remote_ip=None,
        )
    # when the late-payment consumer runs (twice: at least once delivery)
    for _ in range(2):
        await dispatch_once(rt, late_payment_consumer())
    # then the second payment went back whole, once; the order stays paid
    async with rt.db.read() as session:
        statuses = {
            p.payment_no: p.status
            for p in (await session.exec(select(Payment).where(Payment.order_id == order.id)))
        }
    assert statuses == {
        first.payment_no: PaymentStatus.SUCCEEDED,
        second.payment_no: PaymentStatus.REFUNDED,
    }
    [late] = await refunds_of(rt, order.id)
    assert (late.source, late.status) == (RefundSource.LATE_PAYMENT, RefundStatus.COMPLETED)
    assert late.amount_minor == second.amount_minor and late.payment_no == second.payment_no
    assert (await reload_order(rt, order.id)).status is OrderStatus.PAID


async def test_only_a_whole_refund_gives_the_coupon_back(rt: Runtime):
    # given an order of two GA tickets (2 × 180.00) with a 20.00 coupon, spread 10.00 a unit
    sale = await on_sale(rt)
    buyer = await make_user(rt, "coupon@example.com")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    mine = await claimed(rt, buyer, await make_coupon(rt, value="20.00"))
    held = await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=2)
    order = await pay(
        rt, buyer, await order_for(rt, buyer, held, user_coupon_id=mine.user_coupon.id)
    )
    await issue_pending(rt)
    first, second = await tickets_of(rt, order.id)
    assert order.coupon_discount_minor == 2000
    # when one ticket is refunded: what that unit cost after its share of the coupon
    partial = await review(rt, staff, await request(rt, buyer, order, [first.id]))
    assert partial.amount_minor == 17000
    assert await coupon_status(rt, mine.user_coupon.id) is UserCouponStatus.USED
    # and then the other: the whole order is refunded, the coupon usable again
    rest = await review(rt, staff, await request(rt, buyer, order, [second.id]))
    assert rest.amount_minor == 17000
    assert await coupon_status(rt, mine.user_coupon.id) is UserCouponStatus.UNUSED
    refunded = await reload_order(rt, order.id)
    assert (refunded.status, refunded.refunded_minor) == (OrderStatus.REFUNDED, order.total_minor)


async def coupon_status(rt: Runtime, user_coupon_id: str) -> UserCouponStatus:
    async with rt.db.read() as session:
        found = await session.get(UserCoupon, user_coupon_id)
    assert found is not None
    return found.status
