"""Payments: starting one, and applying a provider's callback exactly once.

``apply_callback`` runs in ONE transaction with row locks on the payment and its order: a
replayed or concurrent callback finds the payment already SUCCEEDED and changes nothing
(DUPLICATE, still acknowledged, so the provider stops retrying). The amount and currency must
match the payment. A paid order is confirmed in the ledger after the commit (if the ledger
lost the hold, the session's ledger is rebuilt from the database, which now has the sale).

A payment for an order that expired or was cancelled revives the order when its seats are
still free (database capacity, unique seats, and a fresh ledger hold all agree); otherwise the
money is kept as REFUND_PENDING and a ``payment.refund_due`` event asks for a refund. The same
happens to a second payment for an already paid order. Every callback, accepted or not, is
written to ``payment_callbacks``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.seat_ledger import HoldRequest, LedgerNotLoaded
from boxoffice.clock import utcnow
from boxoffice.db import retrying
from boxoffice.errors import BadUserInput, BoxofficeError, NotFound, OrderStateInvalid
from boxoffice.ids import new_id
from boxoffice.models.orders import (
    CallbackVerdict,
    ItemStatus,
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentCallback,
    PaymentStatus,
)
from boxoffice.providers.payments import (
    CallbackOutcome,
    CallbackRejected,
    CallbackRequest,
    PaymentChannel,
    PaymentOrder,
    PaymentStart,
    VerifiedCallback,
)
from boxoffice.providers.payments.registry import PaymentProviders
from boxoffice.services import inventory, order_states, outbox, session_sold_out
from boxoffice.services.inventory import ms
from boxoffice.services.orders import (
    REVIVE_HOOKS,
    OrderDeps,
    give_capacity,
    items_of,
    order_resource,
    publish_order,
    take_capacity,
)
from boxoffice.services.viewer import Viewer

log = logging.getLogger("boxoffice.payments")

SENSITIVE_HEADERS = frozenset({"authorization", "cookie"})
REVIVE_HOLD_TTL_MS = 60_000


@dataclass(frozen=True)
class PaymentDeps:
    orders: OrderDeps
    providers: PaymentProviders
    public_base_url: str


@dataclass(frozen=True)
class CallbackResult:
    verdict: CallbackVerdict
    reason: str | None = None
    order: Order | None = None


def notify_url(base_url: str, channel: PaymentChannel) -> str:
    return base_url.rstrip("/") + channel.notify_path


async def start_payment(
    *, deps: PaymentDeps, viewer: Viewer, order_id: str, channel: PaymentChannel
) -> tuple[Payment, PaymentStart]:
    """Open a payment for the caller's unpaid order on ``channel``.

    Raises ``NotFound``, ``ORDER_STATE_INVALID`` (not unpaid), ``BadUserInput`` (channel not
    offered here).
    """
    db = deps.orders.db
    user_id = viewer.require_user()
    async with db.read() as session:
        order = await session.get(Order, order_id)
    if order is None or order.user_id != user_id:
        raise NotFound("No such order.")
    if order.status != OrderStatus.PENDING_PAYMENT:
        order_states.check(order.id, order.status, OrderStatus.PAID)
    if order.expires_at is not None and order.expires_at <= utcnow():
        order_states.check(order.id, OrderStatus.EXPIRED, OrderStatus.PENDING_PAYMENT)
    provider = deps.providers.get(channel)
    if provider is None:
        raise BadUserInput(
            f"{channel} is not offered here.", field="channel", reason="CHANNEL_DISABLED"
        )
    payment = Payment(
        payment_no="P" + new_id(),
        order_id=order.id,
        tenant_id=order.tenant_id,
        user_id=user_id,
        channel=channel.value,
        amount_minor=order.total_minor,
        currency=order.currency,
    )
    async with db.write() as session:
        session.add(payment)
    request = PaymentOrder(
        payment_no=payment.payment_no,
        amount_minor=order.total_minor,
        currency=order.currency,
        subject=f"boxoffice {order.order_no}",
        notify_url=notify_url(deps.public_base_url, channel),
        expires_at=order.expires_at or utcnow() + timedelta(minutes=15),
    )
    if channel is PaymentChannel.SANDBOX and deps.providers.sandbox_gateway is not None:
        deps.providers.sandbox_gateway.register(request)
    return payment, await provider.start(request)


def _audit(
    session: AsyncSession,
    *,
    channel: str,
    request: CallbackRequest,
    verdict: CallbackVerdict,
    reason: str | None,
    payment_no: str | None,
    outcome: str | None,
    amount_minor: int | None,
    remote_ip: str | None,
) -> None:
    session.add(
        PaymentCallback(
            channel=channel,
            payment_no=payment_no,
            verdict=verdict,
            reason=reason,
            outcome=outcome,
            amount_minor=amount_minor,
            headers={
                k: v for k, v in request.headers.items() if k.lower() not in SENSITIVE_HEADERS
            },
            body=request.body.decode("utf-8", "replace")[:65536],
            remote_ip=remote_ip,
        )
    )


async def handle_callback(
    *,
    deps: PaymentDeps,
    channel: PaymentChannel,
    request: CallbackRequest,
    remote_ip: str | None,
) -> tuple[CallbackResult, bool]:
    """Verify and apply one callback. Returns the result and whether to acknowledge it (the
    provider's success answer: for applied, duplicate and ignored callbacks)."""
    provider = deps.providers.get(channel)
    if provider is None:
        raise NotFound("No such payment channel.")
    db = deps.orders.db
    try:
        verified = provider.verify_callback(request, now=utcnow())
    except CallbackRejected as rejected:
        log.warning("rejected %s callback: %s %s", channel, rejected.reason, rejected.detail)
        async with db.write() as session:
            _audit(
                session,
                channel=channel.value,
                request=request,
                verdict=CallbackVerdict.REJECTED,
                reason=str(rejected.reason),
                payment_no=None,
                outcome=None,
                amount_minor=None,
                remote_ip=remote_ip,
            )
        return CallbackResult(CallbackVerdict.REJECTED, str(rejected.reason)), False
    result = await apply_verified(deps, verified, request=request, remote_ip=remote_ip)
    accepted = result.verdict is not CallbackVerdict.REJECTED
    return result, accepted


async def apply_verified(
    deps: PaymentDeps,
    verified: VerifiedCallback,
    *,
    request: CallbackRequest | None = None,
    remote_ip: str | None = None,
) -> CallbackResult:
    """Apply a verified provider answer (from a callback or an active query) exactly once.

    The transaction runs again after a deadlock or a serialization failure: it locks the
    payment first and re-reads everything, so a second run sees exactly what the first would
    have; the one thing it does outside the database — a reviving order's fresh ledger hold —
    is given back when its transaction fails."""
    db = deps.orders.db
    ledger = deps.orders.ledger

    async def attempt() -> CallbackResult:
        revived_holds: list[tuple[str, str]] = []
        try:
            async with db.write() as session:
                result = await _apply(session, deps, verified, revived_holds)
                if request is not None:
                    _audit(
                        session,
                        channel=verified.channel.value,
                        request=request,
                        verdict=result.verdict,
                        reason=result.reason,
                        payment_no=verified.payment_no,
                        outcome=verified.outcome.value,
                        amount_minor=verified.amount_minor,
                        remote_ip=remote_ip,
                    )
            return result
        except BaseException:
            for session_id, hold_id in revived_holds:
                await asyncio.shield(inventory.give_back(ledger, session_id, hold_id))
            raise

    result = await retrying(attempt, what=f"apply payment {verified.payment_no}")
    confirm: Order | None = None
    revived: Order | None = None
    paid = result.order is not None and result.order.status == OrderStatus.PAID
    if result.verdict is CallbackVerdict.APPLIED and paid:
        confirm = result.order
        revived = result.order if result.reason == "REVIVED" else None
    if result.verdict is CallbackVerdict.REJECTED and request is None:
        return result
    if confirm is not None:
        await _confirm_in_ledger(deps, confirm)
        await publish_order(deps.orders.broker, confirm)
    if revived is not None:
        log.info("order %s revived by a late payment", revived.id)
    return result


async def _apply(
    session: AsyncSession,
    deps: PaymentDeps,
    cb: VerifiedCallback,
    revived_holds: list[tuple[str, str]],
) -> CallbackResult:
    payment = (
        await session.exec(
            select(Payment).where(Payment.payment_no == cb.payment_no).with_for_update()
        )
    ).first()
    if payment is None:
        return CallbackResult(CallbackVerdict.REJECTED, "UNKNOWN_PAYMENT")
    if payment.channel != cb.channel.value:
        return CallbackResult(CallbackVerdict.REJECTED, "CHANNEL_MISMATCH")
    if cb.amount_minor != payment.amount_minor or cb.currency.upper() != payment.currency.upper():
        return CallbackResult(CallbackVerdict.REJECTED, "AMOUNT_MISMATCH")
    now = utcnow()
    if cb.outcome is CallbackOutcome.PENDING:
        return CallbackResult(CallbackVerdict.IGNORED, "STILL_PAYING")
    if cb.outcome in (CallbackOutcome.FAILED, CallbackOutcome.CLOSED):
        if payment.status != PaymentStatus.PENDING:
            return CallbackResult(CallbackVerdict.IGNORED, f"ALREADY_{payment.status.value}")
        payment.status = (
            PaymentStatus.FAILED if cb.outcome is CallbackOutcome.FAILED else PaymentStatus.CLOSED
        )
        payment.updated_at = now
        session.add(payment)
        return CallbackResult(CallbackVerdict.APPLIED, cb.outcome.value)
    if payment.status in (
        PaymentStatus.SUCCEEDED,
        PaymentStatus.REFUND_PENDING,
        PaymentStatus.REFUNDED,
    ):
        return CallbackResult(CallbackVerdict.DUPLICATE)
    order = (
        await session.exec(select(Order).where(Order.id == payment.order_id).with_for_update())
    ).one()
    payment.provider_trade_no = cb.provider_trade_no
    payment.paid_at = cb.paid_at or now
    payment.updated_at = now
    if order.status == OrderStatus.PENDING_PAYMENT:
        await mark_paid(session, order, payment, now)
        return CallbackResult(CallbackVerdict.APPLIED, None, order)
    ended = order.status in (OrderStatus.EXPIRED, OrderStatus.CANCELLED)
    if ended and await _revive(session, deps, order, now, revived_holds):
        await mark_paid(session, order, payment, now)
        return CallbackResult(CallbackVerdict.APPLIED, "REVIVED", order)
    payment.status = PaymentStatus.REFUND_PENDING
    session.add(payment)
    outbox.emit(
        session,
        topic="payment.refund_due",
        aggregate_type="Payment",
        aggregate_id=payment.id,
        tenant_id=payment.tenant_id,
        payload={
            "resource": {
                "paymentNo": payment.payment_no,
                "orderId": order.id,
                "orderStatus": order.status.value,
            },
            "userId": order.user_id,
        },
    )
    return CallbackResult(CallbackVerdict.REFUND_SCHEDULED, f"ORDER_{order.status.value}", order)


async def mark_paid(session: AsyncSession, order: Order, payment: Payment, now: datetime) -> None:
    """PENDING_PAYMENT → PAID inside ``session``'s transaction, with ``order.paid`` in the outbox
    (the box office uses it too), and ``session.sold_out`` when it sold the session's last
    ticket."""
    order_states.check(order.id, order.status, OrderStatus.PAID)
    order.status = OrderStatus.PAID
    order.paid_at = now
    order.updated_at = now
    order.payment_method = payment.channel
    payment.status = PaymentStatus.SUCCEEDED
    session.add(order)
    session.add(payment)
    items = await items_of(session, order.id)
    outbox.emit(
        session,
        topic="order.paid",
        aggregate_type="Order",
        aggregate_id=order.id,
        tenant_id=order.tenant_id,
        payload={"resource": order_resource(order, items), "userId": order.user_id},
    )
    await session_sold_out.emit_if_sold_out(session, order, now)


async def _revive(
    session: AsyncSession,
    deps: PaymentDeps,
    order: Order,
    now: datetime,
    revived_holds: list[tuple[str, str]],
) -> bool:
    """Take the order's units again, in the ledger and the database, if they are still free.

    The order's old ledger hold is released first: the order ended, so it is due to go, but
    the process that ended the order may not have released it yet (it does so after its
    commit) or may have failed to (the ledger failed just then), and it must not pin the
    order's own seats. The new hold gets a new id, stored on the order, so that a release of
    the old one arriving late cannot free it. It is noted in ``revived_holds`` (given back if
    the transaction fails)."""
    items = [i for i in await items_of(session, order.id) if i.status == ItemStatus.RELEASED]
    if not items:
        return False
    seat_ids = tuple(i.seat_id for i in items if i.seat_id)
    units: dict[str, int] = defaultdict(int)
    for item in items:
        units[item.tier_id] += 1
    ledger = deps.orders.ledger
    if not seat_ids and len(units) != 1:
        return False
    await inventory.give_back(ledger, order.session_id, order.hold_id)
    request = HoldRequest(
        hold_id=new_id(),
        user_id=order.user_id or f"order:{order.id}",
        ttl_ms=REVIVE_HOLD_TTL_MS,
        seat_ids=seat_ids,
        tier_id=None if seat_ids else next(iter(units)),
        quantity=0 if seat_ids else sum(units.values()),
    )
    rules = await deps.orders.rules.get(order.session_id)
    try:
        await inventory._with_ledger(
            deps.orders.db,
            ledger,
            rules,
            lambda: ledger.hold(order.session_id, request, now_ms=ms(now)),
        )
    except BoxofficeError:
        return False
    revived_holds.append((order.session_id, request.hold_id))
    try:
        async with session.begin_nested():
            for retake in REVIVE_HOOKS:
                if not await retake(session, order):
                    raise OrderStateInvalid("Something this order used is gone.")
            await take_capacity(session, dict(units))
            for item in items:
                item.live, item.status = True, ItemStatus.ACTIVE
                session.add(item)
            order.hold_id = request.hold_id
            session.add(order)
            await session.flush()
    except (BoxofficeError, IntegrityError):
        await inventory.give_back(ledger, order.session_id, request.hold_id)
        revived_holds.remove((order.session_id, request.hold_id))
        return False
    await ledger.mark_pending(
        order.session_id,
        request.hold_id,
        request.user_id,
        until_ms=ms(now + inventory.PENDING_GRACE),
        now_ms=ms(now),
    )
    return True


async def _confirm_in_ledger(deps: PaymentDeps, order: Order) -> None:
    ledger = deps.orders.ledger
    try:
        confirmed = await ledger.confirm(order.session_id, order.hold_id)
    except LedgerNotLoaded:
        confirmed = False
    if not confirmed:
        log.warning("ledger lost the hold of paid order %s: rebuilding its session", order.id)
        rules = await deps.orders.rules.get(order.session_id)
        await inventory.load_ledger(db=deps.orders.db, ledger=ledger, rules=rules, force=True)


async def payment_for(deps: PaymentDeps, payment_no: str) -> Payment:
    async with deps.orders.db.read() as session:
        payment = (
            await session.exec(select(Payment).where(Payment.payment_no == payment_no))
        ).first()
    if payment is None:
        raise NotFound("No such payment.")
    return payment


async def query_stale_payments(
    deps: PaymentDeps, *, older_than: timedelta = timedelta(minutes=10)
) -> int:
    """The active query job: ask providers about payments still PENDING after their retry
    window, and apply what they answer (a lost callback must not lose a sale)."""
    now = utcnow()
    async with deps.orders.db.read() as session:
        stale = (
            await session.exec(
                select(Payment)
                .where(
                    col(Payment.status) == PaymentStatus.PENDING,
                    col(Payment.created_at) <= now - older_than,
                    col(Payment.created_at) >= now - timedelta(days=2),
                )
                .order_by(col(Payment.last_queried_at).is_not(None), col(Payment.last_queried_at))
                .limit(50)
            )
        ).all()
    applied = 0
    for payment in stale:
        provider = deps.providers.get(PaymentChannel(payment.channel))
        if provider is None:
            continue
        try:
            answer = await provider.query(payment.payment_no)
        except Exception as exc:
            log.info("query of %s failed: %s", payment.payment_no, exc)
            continue
        async with deps.orders.db.write() as session:
            row = await session.get(Payment, payment.id)
            if row is not None:
                row.last_queried_at = now
                session.add(row)
        outcome = {
            "PAID": CallbackOutcome.PAID,
            "FAILED": CallbackOutcome.FAILED,
            "CLOSED": CallbackOutcome.CLOSED,
        }.get(str(answer.status.value if hasattr(answer.status, "value") else answer.status))
        if outcome is None or answer.amount_minor is None:
            continue
        verified = VerifiedCallback(
            channel=PaymentChannel(payment.channel),
            payment_no=payment.payment_no,
            provider_trade_no=answer.provider_trade_no or "",
            outcome=outcome,
            amount_minor=answer.amount_minor,
            currency=answer.currency or payment.currency,
            merchant_id="",
            paid_at=answer.paid_at,
            raw=dict(answer.raw or {}),
            event_id=f"query:{payment.payment_no}",
        )
        result = await apply_verified(deps, verified)
        if result.verdict is CallbackVerdict.APPLIED:
            applied += 1
    return applied


_ = (give_capacity, OrderItem, Any)
