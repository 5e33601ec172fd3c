"""Orders: from a hold to an unpaid order, exactly once per idempotency key; cancelling and
expiring give everything back.

``create_order`` runs in ONE database transaction: it claims the idempotency key (a unique
row — a concurrent request with the same key waits on it and then reads the outcome), reads
the caller's hold from the ledger, prices it, takes database capacity with a conditional
update (``reserved + n <= capacity``), inserts the order and its items (a live seat can only
be in one live item: a unique index), marks the ledger hold as owned by the order, and writes
``order.created`` to the outbox. Any failure rolls all of it back; the ledger hold then lapses
at its own time at the latest.

Idempotency follows Stripe and the IETF Idempotency-Key draft: the same key with the same
request returns the first outcome — the order, or the same error; the same key with another
request answers ``IDEMPOTENCY_CONFLICT``. Keys are kept 24 hours, per user.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.broker import Broker, channels
from boxoffice.backends.seat_ledger import SeatLedger
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import (
    BadUserInput,
    BoxofficeError,
    IdempotencyConflict,
    InternalError,
    NotFound,
    RateLimited,
    SeatUnavailable,
    SoldOut,
)
from boxoffice.ids import new_id
from boxoffice.models.events import TicketTier
from boxoffice.models.orders import (
    IdempotencyKey,
    ItemStatus,
    Order,
    OrderItem,
    OrderStatus,
    SalesChannel,
)
from boxoffice.services import audit, inventory, order_states, outbox, validation
from boxoffice.services.inventory import PENDING_GRACE, HoldView, ms
from boxoffice.services.pricing import PricingContext, price_order
from boxoffice.services.session_rules import SessionRules, SessionRulesCache
from boxoffice.services.viewer import Viewer

log = logging.getLogger("boxoffice.orders")

OPERATION = "createOrder"
KEY_TTL = timedelta(hours=24)
UNREPLAYABLE = (RateLimited, InternalError)


@dataclass(frozen=True)
class OrderDeps:
    """What order operations need, passed explicitly by the resolvers."""

    db: Database
    ledger: SeatLedger
    rules: SessionRulesCache
    broker: Broker
    order_ttl_seconds: int


def new_order_no(now: datetime) -> str:
    """``BO`` + UTC date + 10 random digits: readable on the phone, not guessable."""
    return f"BO{now:%y%m%d}{secrets.randbelow(10**10):010d}"


def _fingerprint(**fields: Any) -> str:
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()


def order_resource(order: Order, items: list[OrderItem] | None = None) -> dict[str, Any]:
    """The order as the API shows it (outbox payloads, webhooks, subscriptions)."""

    def money(minor: int) -> dict[str, str]:
        return {"amount": f"{minor / 100:.2f}", "currency": order.currency}

    resource: dict[str, Any] = {
        "id": order.id,
        "orderNo": order.order_no,
        "status": order.status.value,
        "tenantId": order.tenant_id,
        "eventId": order.event_id,
        "sessionId": order.session_id,
        "subtotal": money(order.subtotal_minor),
        "discount": money(order.promotion_discount_minor + order.coupon_discount_minor),
        "total": money(order.total_minor),
        "expiresAt": order.expires_at.isoformat() if order.expires_at else None,
        "paidAt": order.paid_at.isoformat() if order.paid_at else None,
        "createdAt": order.created_at.isoformat(),
    }
    if items is not None:
        resource["items"] = [
            {
                "id": i.id,
                "tierId": i.tier_id,
                "tierName": i.tier_name,
                "seatId": i.seat_id,
                "seatLabel": i.seat_label,
                "price": money(i.unit_price_minor - i.discount_minor),
            }
            for i in items
        ]
    return resource


async def publish_order(broker: Broker, order: Order) -> None:
    """Tell ``orderUpdates`` subscribers (any process) that the order changed."""
    await broker.publish(
        channels.order(order.id),
        orjson.dumps({"id": order.id, "status": order.status.value}).decode(),
    )


async def _outcome(db: Database, user_id: str, key: str, fingerprint: str) -> Order | None:
    """The stored outcome of a key: the order, or re-raise the stored error. None: unused."""
    async with db.read() as session:
        row = (
            await session.exec(
                select(IdempotencyKey).where(
                    IdempotencyKey.user_id == user_id,
                    IdempotencyKey.operation == OPERATION,
                    IdempotencyKey.key == key,
                )
            )
        ).first()
        if row is None or row.expires_at <= utcnow():
            return None
        if row.request_hash != fingerprint:
            raise IdempotencyConflict()
        if row.order_id:
            order = await session.get(Order, row.order_id)
            if order is not None:
                return order
    if row.error:
        raise _stored_error(row.error)
    return None


class _StoredError(BoxofficeError):
    """An error replayed from an idempotency key: same code, status, message and details."""

    def __init__(self, code: str, status: int, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, **details)
        self._code, self._status = code, status

    def extensions(self) -> dict[str, Any]:
        return {"code": self._code, "status": self._status, **self.details}


def _stored_error(error: dict[str, Any]) -> BoxofficeError:
    details = {
        k: v for k, v in (error.get("extensions") or {}).items() if k not in ("code", "status")
    }
    ext = error.get("extensions") or {}
    return _StoredError(
        str(ext.get("code")), int(ext.get("status", 1500)), str(error.get("message")), details
    )


class _KeyTaken(Exception):
    """Another request claimed the key first (its outcome is read after its commit)."""


async def create_order(
    *,
    deps: OrderDeps,
    viewer: Viewer,
    hold_token: str,
    idempotency_key: str,
    contact_name: str | None = None,
    contact_phone: str | None = None,
    user_coupon_id: str | None = None,
) -> Order:
    """Place an unpaid order for the caller's hold (see the module docstring).

    Raises ``IdempotencyConflict``, ``HoldExpired``, ``HoldNotFound``, ``SoldOut``,
    ``SeatUnavailable``, ``CouponUnavailable``, ``BadUserInput``.
    """
    user_id = viewer.require_user()
    key = validation.text(idempotency_key, field="idempotencyKey", max_length=255)
    name = validation.optional_text(contact_name, field="contact.name", max_length=64)
    phone = validation.phone(contact_phone, field="contact.phone") if contact_phone else None
    fingerprint = _fingerprint(hold=hold_token, name=name, phone=phone, coupon=user_coupon_id)
    existing = await _outcome(deps.db, user_id, key, fingerprint)
    if existing is not None:
        return existing
    now = utcnow()
    try:
        # The session's rules are read before the transaction: read inside it (the cache
        # expires every few seconds) they would need a second connection while this one is
        # held, and in a rush of orders holding every connection of the pool each would wait
        # for a connection only the others could give back, until the pool's timeout.
        rules = await deps.rules.get(inventory.parse_hold_token(hold_token)[0])
        async with deps.db.write() as session:
            claim = IdempotencyKey(
                user_id=user_id,
                operation=OPERATION,
                key=key,
                request_hash=fingerprint,
                expires_at=now + KEY_TTL,
            )
            session.add(claim)
            try:
                await session.flush()
            except IntegrityError as exc:
                raise _KeyTaken from exc
            order, _items = await _place(
                session,
                deps,
                viewer=viewer,
                hold_token=hold_token,
                rules=rules,
                contact_name=name,
                contact_phone=phone,
                user_coupon_id=user_coupon_id,
                now=now,
            )
            claim.order_id = order.id
            session.add(claim)
    except _KeyTaken:
        existing = await _outcome(deps.db, user_id, key, fingerprint)
        if existing is None:
            raise IdempotencyConflict(
                "This idempotency key is in use by a request still running."
            ) from None
        return existing
    except BoxofficeError as exc:
        if not isinstance(exc, UNREPLAYABLE):
            await _remember_error(deps.db, user_id, key, fingerprint, exc, now)
        raise
    await publish_order(deps.broker, order)
    return order


async def _remember_error(
    db: Database, user_id: str, key: str, fingerprint: str, exc: BoxofficeError, now: datetime
) -> None:
    try:
        async with db.write() as session:
            session.add(
                IdempotencyKey(
                    user_id=user_id,
                    operation=OPERATION,
                    key=key,
                    request_hash=fingerprint,
                    error={"message": exc.message, "extensions": exc.extensions()},
                    expires_at=now + KEY_TTL,
                )
            )
    except IntegrityError:
        pass  # a concurrent request recorded its outcome first; that one stands


async def _place(
    session: AsyncSession,
    deps: OrderDeps,
    *,
    viewer: Viewer,
    hold_token: str,
    rules: SessionRules,
    contact_name: str | None,
    contact_phone: str | None,
    user_coupon_id: str | None,
    now: datetime,
) -> tuple[Order, list[OrderItem]]:
    hold = await inventory.get_hold(
        db=deps.db,
        ledger=deps.ledger,
        rules_cache=deps.rules,
        viewer=viewer,
        token=hold_token,
        rules=rules,
    )
    if hold.pending:
        raise BadUserInput(
            "An order already owns this hold.", field="holdToken", reason="HOLD_ORDERED"
        )
    return await place_from_hold(
        session,
        deps,
        hold=hold,
        user_id=hold.user_id,
        contact_name=contact_name,
        contact_phone=contact_phone,
        user_coupon_id=user_coupon_id,
        now=now,
        channel=SalesChannel.AGENT if hold.channel else SalesChannel.ONLINE,
        channel_code=hold.channel,
    )


async def take_capacity(session: AsyncSession, units: dict[str, int]) -> None:
    """The database's own no-oversell check: raise ``SoldOut`` if a tier has no room."""
    for tier_id, n in sorted(units.items()):
        result = await session.exec(
            update(TicketTier)
            .where(
                col(TicketTier.id) == tier_id,
                col(TicketTier.reserved) + n <= col(TicketTier.capacity),
            )
            .values(reserved=col(TicketTier.reserved) + n)
        )
        if result.rowcount != 1:
            log.error("database capacity refused %s x%d although the ledger allowed it", tier_id, n)
            raise SoldOut("Sold out.", available=0)


async def give_capacity(session: AsyncSession, units: dict[str, int]) -> None:
    for tier_id, n in sorted(units.items()):
        await session.exec(
            update(TicketTier)
            .where(col(TicketTier.id) == tier_id)
            .values(reserved=col(TicketTier.reserved) - n)
        )


async def place_from_hold(
    session: AsyncSession,
    deps: OrderDeps,
    *,
    hold: HoldView,
    user_id: str | None,
    contact_name: str | None,
    contact_phone: str | None,
    user_coupon_id: str | None,
    now: datetime,
    channel: SalesChannel = SalesChannel.ONLINE,
    channel_code: str | None = None,
) -> tuple[Order, list[OrderItem]]:
    """Turn a hold into an unpaid order inside ``session``'s transaction (the box office and
    agents use it too)."""
    order_id = new_id()
    breakdown = await price_order(
        PricingContext(
            session=session,
            hold=hold,
            user_id=user_id or "",
            user_coupon_id=user_coupon_id,
            order_id=order_id,
        )
    )
    await take_capacity(session, {item.tier_id: item.quantity for item in hold.items})
    expires_at = now + timedelta(seconds=deps.order_ttl_seconds)
    order = Order(
        id=order_id,
        order_no=new_order_no(now),
        tenant_id=hold.tenant_id,
        user_id=user_id,
        event_id=hold.event_id,
        session_id=hold.session_id,
        status=OrderStatus.PENDING_PAYMENT,
        channel=channel,
        channel_code=channel_code,
        currency=hold.currency,
        subtotal_minor=breakdown.subtotal_minor,
        promotion_discount_minor=breakdown.promotion_discount_minor,
        coupon_discount_minor=breakdown.coupon_discount_minor,
        total_minor=breakdown.total_minor,
        contact_name=contact_name,
        contact_phone=contact_phone,
        hold_id=hold.hold_id,
        user_coupon_id=breakdown.user_coupon_id,
        promotion_id=breakdown.promotion_id,
        expires_at=expires_at,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    discounts = iter(breakdown.unit_discounts())
    items: list[OrderItem] = []
    seats_by_tier: dict[str, list[str]] = defaultdict(list)
    for seat in hold.seats:
        seats_by_tier[seat.tier_id].append(seat.seat_id)
    labels = {seat.seat_id: seat.label for seat in hold.seats}
    for item in hold.items:
        seats = seats_by_tier.get(item.tier_id, [])
        for n in range(item.quantity):
            seat_id = seats[n] if n < len(seats) else None
            items.append(
                OrderItem(
                    order_id=order.id,
                    session_id=hold.session_id,
                    tier_id=item.tier_id,
                    seat_id=seat_id,
                    tier_name=item.tier_name,
                    seat_label=labels.get(seat_id) if seat_id else None,
                    unit_price_minor=item.unit_price_minor,
                    discount_minor=next(discounts),
                )
            )
    session.add_all(items)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise SeatUnavailable("A seat of this hold is already in another order.") from exc
    await deps.ledger.mark_pending(
        hold.session_id,
        hold.hold_id,
        hold.user_id,
        until_ms=ms(expires_at + PENDING_GRACE),
        now_ms=ms(now),
    )
    outbox.emit(
        session,
        topic="order.created",
        aggregate_type="Order",
        aggregate_id=order.id,
        tenant_id=order.tenant_id,
        payload={"resource": order_resource(order, items), "userId": user_id},
    )
    return order, items


async def items_of(session: AsyncSession, order_id: str) -> list[OrderItem]:
    return list((await session.exec(select(OrderItem).where(OrderItem.order_id == order_id))).all())


async def _end_unpaid(
    deps: OrderDeps,
    order_id: str,
    target: OrderStatus,
    *,
    reason: str | None,
    only_if_due: bool,
    viewer: Viewer | None = None,
) -> Order | None:
    """Move an unpaid order to CANCELLED or EXPIRED and give back everything it held. The
    status change is conditional (``WHERE status = PENDING_PAYMENT``), so a payment arriving
    at the same moment wins or loses cleanly. Returns None if the order was not unpaid.
    Staff (a ``viewer`` other than the buyer) ending someone's order is audited with it.

    The transaction runs again after a deadlock (it locks the order, then its tiers and its
    coupon, while a reviving payment takes them in another order): it changes nothing outside
    the database and its conditional update makes a second run a no-op if the first won."""
    now = utcnow()

    async def end(session: AsyncSession) -> tuple[Order, list[OrderItem]] | None:
        conditions = [col(Order.id) == order_id, col(Order.status) == OrderStatus.PENDING_PAYMENT]
        if only_if_due:
            conditions.append(col(Order.expires_at) <= now)
        changed = await session.exec(
            update(Order)
            .where(*conditions)
            .values(
                status=target,
                cancelled_at=now,
                cancel_reason=reason,
                updated_at=now,
            )
        )
        if changed.rowcount != 1:
            return None
        order = await session.get(Order, order_id, populate_existing=True)
        assert order is not None
        items = await items_of(session, order_id)
        units: dict[str, int] = defaultdict(int)
        for item in items:
            if item.live:
                units[item.tier_id] += 1
                item.live = False
                item.status = ItemStatus.RELEASED
                session.add(item)
        await give_capacity(session, units)
        for release in RELEASE_HOOKS:
            await release(session, order)
        outbox.emit(
            session,
            topic="order.cancelled" if target == OrderStatus.CANCELLED else "order.expired",
            aggregate_type="Order",
            aggregate_id=order.id,
            tenant_id=order.tenant_id,
            payload={"resource": order_resource(order, items), "userId": order.user_id},
        )
        if viewer is not None and order.user_id != viewer.user_id:
            audit.record(
                session,
                viewer=viewer,
                action="order.cancel",
                target_type="Order",
                target_id=order.id,
                tenant_id=order.tenant_id,
                before={"status": OrderStatus.PENDING_PAYMENT.value},
                after={"status": order.status.value, "reason": reason},
            )
        return order, items

    ended = await deps.db.write_retrying(end, what=f"end order {order_id}")
    if ended is None:
        return None
    order, items = ended
    await _give_back_hold(deps, order, items)
    await publish_order(deps.broker, order)
    return order


async def _give_back_hold(deps: OrderDeps, order: Order, items: list[OrderItem]) -> None:
    """The ended order's ledger hold: to a ``HAND_BACK_HOOKS`` feature that takes it (the
    waitlist), else back to the public (nothing to do when the ledger lost the session)."""
    for hand_back in HAND_BACK_HOOKS:
        try:
            if await hand_back(deps, order, items):
                return
        except Exception:
            log.exception("hand-back hook failed for order %s; releasing its hold", order.id)
    await inventory.give_back(deps.ledger, order.session_id, order.hold_id)


# Features that attach something to an unpaid order (coupons) register how to give it back
# (``async hook(session, order)``, in the transaction that ends the order) and how to take it
# again when a late payment revives the order (``async hook(session, order) -> bool``; False
# means it is gone and the order cannot be revived). Hooks change only the database: their
# transaction may run again after a deadlock.
RELEASE_HOOKS: list[Any] = []
REVIVE_HOOKS: list[Any] = []
# Features that want an ended unpaid order's units before the public (the waitlist) register
# ``async hook(deps, order, items) -> bool``, run after the order's transaction committed:
# True means the hook took care of the order's ledger hold (handed it over, or found it gone);
# False (or an error) leaves it to be released to the public.
HAND_BACK_HOOKS: list[Any] = []


async def get_order(*, db: Database, viewer: Viewer, order_id: str) -> Order:
    """The caller's order, or one of a tenant the caller staffs. Others: ``NOT_FOUND``."""
    viewer.require_user()
    async with db.read() as session:
        order = await session.get(Order, order_id)
    if order is None:
        raise NotFound("No such order.")
    if order.user_id != viewer.user_id and not viewer.can_staff(order.tenant_id):
        raise NotFound("No such order.")
    return order


async def cancel_order(
    *, deps: OrderDeps, viewer: Viewer, order_id: str, reason: str | None
) -> Order:
    """Cancel an unpaid order. Raises ``ORDER_STATE_INVALID`` for any other state. Staff
    cancelling someone's order is audited (``order.cancel``); the buyer's own is not."""
    order = await get_order(db=deps.db, viewer=viewer, order_id=order_id)
    reason = validation.optional_text(reason, field="reason", max_length=500)
    order_states.check(order.id, order.status, OrderStatus.CANCELLED)
    ended = await _end_unpaid(
        deps, order.id, OrderStatus.CANCELLED, reason=reason, only_if_due=False, viewer=viewer
    )
    if ended is None:  # it changed under us (paid or expired a moment ago)
        current = await get_order(db=deps.db, viewer=viewer, order_id=order_id)
        order_states.check(current.id, current.status, OrderStatus.CANCELLED)
        raise InternalError()
    return ended


async def expire_due_orders(deps: OrderDeps, *, limit: int = 200) -> int:
    """Expire unpaid orders past ``expires_at`` (the sweeper job)."""
    now = utcnow()
    async with deps.db.read() as session:
        due = (
            await session.exec(
                select(Order.id)
                .where(
                    col(Order.status) == OrderStatus.PENDING_PAYMENT, col(Order.expires_at) <= now
                )
                .order_by(col(Order.expires_at))
                .limit(limit)
            )
        ).all()
    expired = 0
    for order_id in due:
        if await _end_unpaid(
            deps, order_id, OrderStatus.EXPIRED, reason="payment window elapsed", only_if_due=True
        ):
            expired += 1
    return expired
