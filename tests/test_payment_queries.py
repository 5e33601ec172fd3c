"""The ``query-payments`` job (``payments.query_stale_payments``): a payment whose callback
never came is asked about at the provider (the sandbox company) and applied exactly once."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.jobs import query_payments
from boxoffice.models.identity import User
from boxoffice.models.orders import CallbackVerdict, Order, OrderStatus, Payment, PaymentStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.providers.payments import PaymentChannel
from boxoffice.providers.payments.sandbox import SandboxGateway, SandboxResult
from boxoffice.runtime import Runtime
from boxoffice.services import payments
from tests.helpers import make_user
from tests.order_factories import (
    OnSale,
    hold_for,
    on_sale,
    order_for,
    sandbox_callback,
    start_sandbox_payment,
)


def gateway(rt: Runtime) -> SandboxGateway:
    sandbox = rt.payments.sandbox_gateway
    assert sandbox is not None
    return sandbox


async def started(rt: Runtime, sale: OnSale, user: User, *, minutes_ago: int) -> Payment:
    """An order and a sandbox payment for it, started ``minutes_ago`` minutes ago."""
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    payment = await start_sandbox_payment(rt, user, order)
    async with rt.db.write() as s:
        row = await s.get(Payment, payment.id)
        assert row is not None
        row.created_at = utcnow() - timedelta(minutes=minutes_ago)
        s.add(row)
    return payment


def provider_records(rt: Runtime, payment: Payment, result: SandboxResult) -> None:
    """The payer finished at the company, which recorded it; its callback never arrives."""
    gateway(rt).record(
        payment_no=payment.payment_no,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        result=result,
    )


async def state(rt: Runtime, payment: Payment) -> tuple[PaymentStatus, OrderStatus, Payment]:
    async with rt.db.read() as s:
        row = await s.get(Payment, payment.id)
        assert row is not None
        order = await s.get(Order, row.order_id)
        assert order is not None
    return row.status, order.status, row


async def paid_events(rt: Runtime) -> list[str]:
    async with rt.db.read() as s:
        return list(
            (
                await s.exec(
                    select(OutboxEvent.aggregate_id).where(col(OutboxEvent.topic) == "order.paid")
                )
            ).all()
        )


async def test_a_lost_callback_is_applied_once_by_the_query_job(rt: Runtime):
    # given a payment the company saw paid 11 minutes ago whose callback never came
    sale = await on_sale(rt)
    user = await make_user(rt, "lost@pay.example")
    payment = await started(rt, sale, user, minutes_ago=11)
    provider_records(rt, payment, SandboxResult.SUCCESS)
    assert (await state(rt, payment))[:2] == (PaymentStatus.PENDING, OrderStatus.PENDING_PAYMENT)

    # when the job runs
    applied = await query_payments(rt)

    # then the order is paid, once
    assert applied == 1
    status, order_status, row = await state(rt, payment)
    assert (status, order_status) == (PaymentStatus.SUCCEEDED, OrderStatus.PAID)
    assert row.provider_trade_no == gateway(rt).trade_no(payment.payment_no)
    assert row.last_queried_at is not None
    assert await paid_events(rt) == [row.order_id]

    # when the job runs again, and the lost callback finally arrives
    assert await query_payments(rt) == 0
    late, _ack = await payments.handle_callback(
        deps=rt.payment_deps,
        channel=PaymentChannel.SANDBOX,
        request=await sandbox_callback(rt, payment),
        remote_ip="127.0.0.1",
    )

    # then nothing changes: still paid once
    assert late.verdict is CallbackVerdict.DUPLICATE
    assert (await state(rt, payment))[:2] == (PaymentStatus.SUCCEEDED, OrderStatus.PAID)
    assert await paid_events(rt) == [row.order_id]


async def test_unpaid_failed_and_recent_payments(rt: Runtime):
    # given a payment the company still has as unpaid, one it saw fail, both stale, and one
    # it saw paid a minute ago (its callback may still be on its way)
    sale = await on_sale(rt)
    users = [await make_user(rt, f"q{i}@pay.example") for i in range(3)]
    unpaid = await started(rt, sale, users[0], minutes_ago=20)
    failed = await started(rt, sale, users[1], minutes_ago=20)
    recent = await started(rt, sale, users[2], minutes_ago=1)
    provider_records(rt, failed, SandboxResult.FAILED)
    provider_records(rt, recent, SandboxResult.SUCCESS)

    # when the job runs (twice)
    first = await query_payments(rt)
    second = await query_payments(rt)

    # then the failed payment is FAILED, its order still waits for a payment; the unpaid one
    # stays pending (asked about, its order expires at the end of its payment window); the
    # recent one is not asked about yet
    assert (first, second) == (1, 0)
    status, order_status, _ = await state(rt, failed)
    assert (status, order_status) == (PaymentStatus.FAILED, OrderStatus.PENDING_PAYMENT)
    status, order_status, row = await state(rt, unpaid)
    assert (status, order_status) == (PaymentStatus.PENDING, OrderStatus.PENDING_PAYMENT)
    assert row.last_queried_at is not None
    status, order_status, row = await state(rt, recent)
    assert (status, order_status) == (PaymentStatus.PENDING, OrderStatus.PENDING_PAYMENT)
    assert row.last_queried_at is None
    assert await paid_events(rt) == []
