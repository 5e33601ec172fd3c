"""Carrying out an approved refund: the money first, then everything that follows it.

``process_refund``:

1. A lease: a conditional update sets ``processing_until`` on an APPROVED or FAILED refund
   that nobody is processing, and counts the attempt. Whoever does not get it returns the
   refund as it stands, so two approvals (or a retry and the job) racing make one provider
   call and one set of effects.
2. The money: the provider's refund with the refund's stable ``refund_no`` (idempotent there:
   a retry after a lost answer cannot refund twice). Box-office orders are refunded at the
   counter (the method is recorded, no provider call); a refund of nothing needs no call.
3. Only when the provider answers SUCCEEDED, ONE transaction (``_complete``): the tickets are
   REVOKED (onto the revocation list), the items REFUNDED and no longer live, the database
   capacity given back, the order REFUNDED or PARTIALLY_REFUNDED with ``refunded_minor``, its
   coupon given back and its payment REFUNDED when the whole order is, the refund COMPLETED,
   ``refund.completed`` in the outbox. After the commit the seats go back through the ledger —
   to waitlist offers first (``return_seats``).

   PENDING (or a provider that cannot be reached) keeps the refund APPROVED, FAILED makes it
   FAILED; both only record the attempt and when to try again (``next_attempt_at``, backoff),
   so nothing is half done and ``retryRefund`` or the retry job can finish it.

Seats go back at most once: ``seats_returned_at`` is claimed (a conditional update) before the
ledger is asked. If the ledger call fails, the units stay sold in the ledger until its next
rebuild from the database (which has them free): a lost sale at worst, never a double one.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.seat_ledger import LedgerNotLoaded
from boxoffice.clock import utcnow
from boxoffice.errors import BoxofficeError, NotFound
from boxoffice.models.events import Event
from boxoffice.models.orders import (
    ItemStatus,
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentStatus,
    SalesChannel,
)
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.refunds import Refund, RefundSource, RefundStatus
from boxoffice.models.tickets import Ticket
from boxoffice.providers.payments import (
    PaymentChannel,
    ProviderError,
    RefundOrder,
)
from boxoffice.providers.payments import (
    RefundStatus as ProviderRefundStatus,
)
from boxoffice.providers.payments.registry import PaymentProviders
from boxoffice.services import order_states, outbox
from boxoffice.services.coupon_redemption import release_coupon
from boxoffice.services.orders import OrderDeps, give_capacity, publish_order
from boxoffice.services.outbox import Consumer
from boxoffice.services.ticket_revocations import revoke_tickets
from boxoffice.services.waitlist_offers import Returned, offer_sold_units

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.refunds")

LEASE = timedelta(minutes=2)
MAX_AUTOMATIC_ATTEMPTS = 12
FIRST_RETRY = timedelta(seconds=30)
RETRY_CAP = timedelta(hours=1)
REVOKE_REASON = "refunded"
PROCESSABLE = (RefundStatus.APPROVED, RefundStatus.FAILED)


@dataclass(frozen=True)
class RefundDeps:
    orders: OrderDeps
    providers: PaymentProviders


@dataclass(frozen=True)
class Attempt:
    """What the money movement answered: SUCCEEDED, PENDING or FAILED."""

    status: ProviderRefundStatus
    method: str | None = None
    provider_refund_no: str | None = None
    failure: str | None = None


def new_refund_no(now: datetime) -> str:
    """``RF`` + UTC date + 10 random digits (the provider's out_refund_no)."""
    return f"RF{now:%y%m%d}{secrets.randbelow(10**10):010d}"


def late_refund_no(payment_no: str) -> str:
    """The one refund of a payment the order could not take: named after the payment."""
    return f"R{payment_no}"


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th attempt: 30 s, doubling, at most an hour."""
    return min(RETRY_CAP, FIRST_RETRY * 2 ** max(0, attempts - 1))


def refund_resource(
    refund: Refund, *, order_no: str | None = None, event_title: str | None = None
) -> dict[str, Any]:
    """The refund as the API shows it (outbox payloads, webhooks)."""

    def money(minor: int) -> dict[str, str]:
        return {"amount": f"{minor / 100:.2f}", "currency": refund.currency}

    return {
        "id": refund.id,
        "refundNo": refund.refund_no,
        "status": refund.status.value,
        "source": refund.source.value,
        "tenantId": refund.tenant_id,
        "orderId": refund.order_id,
        "orderNo": order_no,
        "eventId": refund.event_id,
        "eventTitle": event_title,
        "sessionId": refund.session_id,
        "amount": money(refund.amount_minor),
        "fee": money(refund.fee_minor),
        "cost": money(refund.cost_minor),
        "units": len(refund.item_ids),
        "reason": refund.reason,
        "opinion": refund.opinion,
        "createdAt": refund.created_at.isoformat(),
        "completedAt": refund.completed_at.isoformat() if refund.completed_at else None,
    }


async def emit_refund(session: AsyncSession, topic: str, refund: Refund) -> None:
    """Write ``topic`` (refund.requested, .approved, .rejected, .completed) for ``refund``."""
    order = await session.get(Order, refund.order_id)
    event = await session.get(Event, refund.event_id)
    outbox.emit(
        session,
        topic=topic,
        aggregate_type="Refund",
        aggregate_id=refund.id,
        tenant_id=refund.tenant_id,
        payload={
            "resource": refund_resource(
                refund,
                order_no=order.order_no if order else None,
                event_title=event.title if event else None,
            ),
            "userId": refund.user_id,
        },
    )


async def _lease(deps: RefundDeps, refund_id: str, now: datetime) -> bool:
    async with deps.orders.db.write() as session:
        taken = await session.exec(
            update(Refund)
            .where(
                col(Refund.id) == refund_id,
                col(Refund.status).in_(PROCESSABLE),
                or_(col(Refund.processing_until).is_(None), col(Refund.processing_until) < now),
            )
            .values(
                processing_until=now + LEASE,
                attempts=col(Refund.attempts) + 1,
                updated_at=now,
            )
        )
    return taken.rowcount == 1


async def get(deps: RefundDeps, refund_id: str) -> Refund:
    async with deps.orders.db.read() as session:
        refund = await session.get(Refund, refund_id)
    if refund is None:
        raise NotFound("No such refund.")
    return refund


async def process_refund(deps: RefundDeps, refund_id: str) -> Refund:
    """Carry out an APPROVED (or FAILED) refund once (see the module docstring); return it as
    it then stands: COMPLETED, still APPROVED (provider pending), or FAILED."""
    now = utcnow()
    if not await _lease(deps, refund_id, now):
        return await get(deps, refund_id)
    refund = await get(deps, refund_id)
    try:
        attempt = await _move_money(deps, refund)
    except Exception as exc:  # never leave the lease hanging on a surprise
        log.exception("refund %s: the money movement failed", refund.refund_no)
        attempt = Attempt(ProviderRefundStatus.PENDING, failure=f"{type(exc).__name__}"[:200])
    if attempt.status is not ProviderRefundStatus.SUCCEEDED:
        return await _record(deps, refund_id, attempt)
    completed, order = await _complete(deps, refund_id, attempt)
    if order is not None:
        await return_seats(deps, completed.id)
        await publish_order(deps.orders.broker, order)
    return completed


async def _move_money(deps: RefundDeps, refund: Refund) -> Attempt:
    if refund.amount_minor == 0:
        return Attempt(ProviderRefundStatus.SUCCEEDED, method="NONE")
    async with deps.orders.db.read() as session:
        payment = (
            await session.exec(select(Payment).where(Payment.payment_no == refund.payment_no))
        ).first()
        order = await session.get(Order, refund.order_id)
    if payment is None or order is None:
        return Attempt(ProviderRefundStatus.FAILED, failure="PAYMENT_NOT_FOUND")
    if payment.channel == SalesChannel.BOX_OFFICE.value:
        # paid at the counter, refunded at the counter: record how
        return Attempt(ProviderRefundStatus.SUCCEEDED, method=order.payment_method or "CASH")
    provider = deps.providers.get(PaymentChannel(payment.channel))
    if provider is None:
        return Attempt(ProviderRefundStatus.FAILED, failure="CHANNEL_UNAVAILABLE")
    try:
        outcome = await provider.refund(
            RefundOrder(
                payment_no=payment.payment_no,
                refund_no=refund.refund_no,
                amount_minor=refund.amount_minor,
                total_minor=payment.amount_minor,
                currency=payment.currency,
                reason=refund.reason,
            )
        )
    except ProviderError as exc:
        log.warning("refund %s: provider error %s", refund.refund_no, exc)
        status = ProviderRefundStatus.PENDING if exc.retryable else ProviderRefundStatus.FAILED
        return Attempt(status, method=payment.channel, failure=(exc.code or str(exc))[:200])
    return Attempt(
        outcome.status,
        method=payment.channel,
        provider_refund_no=outcome.provider_refund_no,
        failure=(outcome.failure or "")[:200] or None,
    )


async def _record(deps: RefundDeps, refund_id: str, attempt: Attempt) -> Refund:
    """A refund that did not go through (yet): note it, schedule the next try."""
    now = utcnow()
    async with deps.orders.db.write() as session:
        refund = (
            await session.exec(
                select(Refund)
                .where(Refund.id == refund_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
        if refund.status in PROCESSABLE:
            failed = attempt.status is ProviderRefundStatus.FAILED
            refund.status = RefundStatus.FAILED if failed else RefundStatus.APPROVED
            refund.provider_status = attempt.status.value
            refund.failure = attempt.failure
            refund.method = attempt.method or refund.method
            refund.next_attempt_at = (
                now + retry_delay(refund.attempts)
                if refund.attempts < MAX_AUTOMATIC_ATTEMPTS
                else None
            )
        refund.processing_until = None
        refund.updated_at = now
        session.add(refund)
    log.info("refund %s not done yet: %s %s", refund.refund_no, attempt.status, attempt.failure)
    return refund


async def _complete(
    deps: RefundDeps, refund_id: str, attempt: Attempt
) -> tuple[Refund, Order | None]:
    """The money went back: everything that follows, in one transaction. Returns the refund
    and, when this call completed it, its order (None: nothing to do, or no order touched)."""
    now = utcnow()
    async with deps.orders.db.write() as session:
        refund = (
            await session.exec(
                select(Refund)
                .where(Refund.id == refund_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).one()
        if refund.status not in PROCESSABLE:
            return refund, None
        refund.status = RefundStatus.COMPLETED
        refund.completed_at = refund.updated_at = now
        refund.provider_status = ProviderRefundStatus.SUCCEEDED.value
        refund.provider_refund_no = attempt.provider_refund_no
        refund.method = attempt.method or refund.method
        refund.failure = refund.next_attempt_at = refund.processing_until = None
        refund.open_order_id = None
        order: Order | None = None
        if refund.source is RefundSource.LATE_PAYMENT:
            await _mark_payment_refunded(session, refund.payment_no, now)
        else:
            order = await _refund_order(session, refund, now)
        session.add(refund)
        await emit_refund(session, "refund.completed", refund)
    log.info("refund %s completed (%s)", refund.refund_no, refund.method)
    return refund, order


async def _mark_payment_refunded(
    session: AsyncSession, payment_no: str | None, now: datetime
) -> None:
    if payment_no is None:
        return
    await session.exec(
        update(Payment)
        .where(col(Payment.payment_no) == payment_no)
        .values(status=PaymentStatus.REFUNDED, updated_at=now)
    )


async def _refund_order(session: AsyncSession, refund: Refund, now: datetime) -> Order:
    order = (
        await session.exec(
            select(Order)
            .where(Order.id == refund.order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    items = (
        await session.exec(
            select(OrderItem)
            .where(col(OrderItem.order_id) == order.id)
            .order_by(col(OrderItem.id))
            .with_for_update()
        )
    ).all()
    wanted = set(refund.item_ids)
    units: dict[str, int] = defaultdict(int)
    for item in items:
        if item.id in wanted and item.live and item.status is ItemStatus.ACTIVE:
            item.live, item.status = False, ItemStatus.REFUNDED
            units[item.tier_id] += 1
            session.add(item)
    tickets = (
        await session.exec(select(Ticket.id).where(col(Ticket.order_item_id).in_(sorted(wanted))))
    ).all()
    await revoke_tickets(session, ticket_ids=list(tickets), reason=REVOKE_REASON)
    await give_capacity(session, dict(units))
    whole = not any(i.live and i.status is ItemStatus.ACTIVE for i in items)
    target = OrderStatus.REFUNDED if whole else OrderStatus.PARTIALLY_REFUNDED
    order_states.check(order.id, order.status, target)
    order.status, order.updated_at = target, now
    order.refunded_minor += refund.amount_minor
    session.add(order)
    if whole:
        await release_coupon(session, order)
        await _mark_payment_refunded(session, refund.payment_no, now)
    return order


async def return_seats(deps: RefundDeps, refund_id: str) -> int:
    """The completed refund's seats go back through the ledger, to the waitlist first; at
    most once (see the module docstring). Returns how many waitlist offers it made."""
    now = utcnow()
    db = deps.orders.db
    async with db.write() as session:
        claimed = await session.exec(
            update(Refund)
            .where(
                col(Refund.id) == refund_id,
                col(Refund.status) == RefundStatus.COMPLETED,
                col(Refund.seats_returned_at).is_(None),
            )
            .values(seats_returned_at=now)
        )
        if claimed.rowcount != 1:
            return 0
        refund = await session.get(Refund, refund_id)
        assert refund is not None
        order = await session.get(Order, refund.order_id)
        assert order is not None
        items = (
            await session.exec(
                select(OrderItem).where(
                    col(OrderItem.id).in_(sorted(refund.item_ids)),
                    OrderItem.status == ItemStatus.REFUNDED,
                )
            )
        ).all()
    if not items:
        return 0
    try:
        return await offer_sold_units(
            deps.orders,
            session_id=order.session_id,
            buyer_id=order.user_id or f"order:{order.id}",
            returned=Returned.of_items(items),
        )
    except (BoxofficeError, LedgerNotLoaded) as exc:
        # the ledger was rebuilt from the database meanwhile: it has the units free already
        log.info("refund %s: the ledger already has its units (%s)", refund.refund_no, exc)
    except Exception:
        log.exception("refund %s: could not return its seats to the ledger", refund.refund_no)
    return 0


async def retry_due_refunds(deps: RefundDeps, *, limit: int = 50) -> list[Refund]:
    """The retry job: APPROVED or FAILED refunds whose next attempt is due, and completed
    refunds whose seats never went back (a process that died after the commit). Returns the
    refunds it processed."""
    now = utcnow()
    async with deps.orders.db.read() as session:
        due = (
            await session.exec(
                select(Refund.id)
                .where(
                    col(Refund.status).in_(PROCESSABLE),
                    col(Refund.next_attempt_at) <= now,
                )
                .order_by(col(Refund.next_attempt_at))
                .limit(limit)
            )
        ).all()
        unreturned = (
            await session.exec(
                select(Refund.id)
                .where(
                    col(Refund.status) == RefundStatus.COMPLETED,
                    col(Refund.seats_returned_at).is_(None),
                    col(Refund.source) != RefundSource.LATE_PAYMENT,
                    col(Refund.completed_at) <= now - timedelta(seconds=30),
                )
                .limit(limit)
            )
        ).all()
    processed = [await process_refund(deps, refund_id) for refund_id in due]
    for refund_id in unreturned:
        await return_seats(deps, refund_id)
    return processed


async def refund_late_payment(deps: RefundDeps, payment_no: str) -> Refund | None:
    """A payment the order could not take (``payment.refund_due``) goes back whole, once:
    its refund is named after the payment (``R`` + payment number, unique)."""
    refund_no = late_refund_no(payment_no)
    async with deps.orders.db.write() as session:
        existing = (await session.exec(select(Refund).where(Refund.refund_no == refund_no))).first()
        if existing is None:
            payment = (
                await session.exec(select(Payment).where(Payment.payment_no == payment_no))
            ).first()
            if payment is None or payment.status is not PaymentStatus.REFUND_PENDING:
                return None
            order = await session.get(Order, payment.order_id)
            assert order is not None
            existing = Refund(
                refund_no=refund_no,
                tenant_id=payment.tenant_id,
                order_id=order.id,
                event_id=order.event_id,
                session_id=order.session_id,
                user_id=payment.user_id,
                source=RefundSource.LATE_PAYMENT,
                status=RefundStatus.APPROVED,
                reason="paid after the order could take it",
                reviewed_at=utcnow(),
                item_ids=[],
                cost_minor=payment.amount_minor,
                amount_minor=payment.amount_minor,
                currency=payment.currency,
                payment_no=payment.payment_no,
                method=payment.channel,
            )
            session.add(existing)
    return await process_refund(deps, existing.id)


def late_payment_consumer() -> Consumer:
    """Refunds ``payment.refund_due`` payments automatically (retried by the outbox and, once
    written, by the refund retry job)."""

    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        resource = event.payload.get("resource") if isinstance(event.payload, dict) else None
        payment_no = resource.get("paymentNo") if isinstance(resource, dict) else None
        if isinstance(payment_no, str):
            await refund_late_payment(rt.refund_deps, payment_no)

    return Consumer("late-payment-refunds", handle, topics=frozenset({"payment.refund_due"}))
