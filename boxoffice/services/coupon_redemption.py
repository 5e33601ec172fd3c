"""Using a coupon on an order, and giving it back.

``quote`` decides whether a person's coupon applies to a hold and what it takes off; the
checkout step (``coupon_step``) and ``availableCoupons`` both call it with the same inputs,
so what a customer is offered is what checkout charges.

At checkout the coupon is checked again (owner, status, window, scope, minimum spend) and
then locked to the order in the order's own transaction by a conditional update
(``UNUSED → USED WHERE status = UNUSED``): of two orders racing for one coupon, one gets it
and the other answers ``COUPON_UNAVAILABLE`` (reason USED). Cancelling or expiring the
unpaid order gives it back (``release_coupon``, a ``RELEASE_HOOKS`` entry); refunds call
``release_coupon`` for a full refund; a late payment reviving the order takes it again
(``retake_coupon``).

A coupon that does not stack with promotions replaces the event's promotion: the order gets
the coupon, computed on the full prices, and no promotion.

Importing this module installs the pricing steps: the promotion first, then the coupon.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.errors import CouponUnavailable
from boxoffice.models.coupons import Coupon, CouponScope, CouponStatus, UserCoupon, UserCouponStatus
from boxoffice.models.orders import Order
from boxoffice.services import orders, promotions
from boxoffice.services.discounts import coupon_discount
from boxoffice.services.inventory import HoldView
from boxoffice.services.pricing import DISCOUNT_STEPS, Breakdown, PricingContext, spread

_MESSAGES = {
    "NOT_FOUND": "You have no such coupon.",
    "USED": "This coupon is already used.",
    "EXPIRED": "This coupon has expired.",
    "NOT_STARTED": "This coupon is not valid yet.",
    "NOT_APPLICABLE": "This coupon does not apply to these tickets.",
    "MIN_SPEND_NOT_MET": "The order does not reach this coupon's minimum spend.",
}


def refuse(reason: str) -> CouponUnavailable:
    return CouponUnavailable(_MESSAGES.get(reason), reason=reason)


@dataclass(frozen=True)
class CouponQuote:
    discount_minor: int  # what the coupon takes off
    promotion_discount_minor: int  # the promotion the order keeps beside it


def effective_status(user_coupon: UserCoupon, coupon: Coupon, now: datetime) -> UserCouponStatus:
    """USED, or EXPIRED for an unused one whose coupon ended or whose window closed."""
    if user_coupon.status is UserCouponStatus.USED:
        return UserCouponStatus.USED
    if coupon.status is CouponStatus.ENDED or (
        coupon.valid_to is not None and coupon.valid_to <= now
    ):
        return UserCouponStatus.EXPIRED
    return UserCouponStatus.UNUSED


def _applies_to_hold(coupon: Coupon, hold: HoldView) -> bool:
    if coupon.currency != hold.currency:
        return False
    if coupon.scope is CouponScope.TENANT:
        return coupon.tenant_id == hold.tenant_id
    if coupon.scope is CouponScope.EVENT:
        return coupon.event_id == hold.event_id
    if coupon.scope is CouponScope.TIER:
        return any(item.tier_id == coupon.tier_id for item in hold.items)
    return True


def quote(
    coupon: Coupon,
    user_coupon: UserCoupon,
    *,
    hold: HoldView,
    promotion_discount_minor: int,
    now: datetime,
) -> CouponQuote:
    """What ``user_coupon`` takes off ``hold`` after a promotion of
    ``promotion_discount_minor``. Raises ``CouponUnavailable`` with ``reason`` USED,
    EXPIRED, NOT_STARTED, NOT_APPLICABLE or MIN_SPEND_NOT_MET.

    The base is the price of the units in the coupon's scope less their share of the
    promotion (``spread`` over all units), or their full price when the coupon does not
    stack, in which case the promotion is dropped."""
    status = effective_status(user_coupon, coupon, now)
    if status is not UserCouponStatus.UNUSED:
        raise refuse(status.value)
    if coupon.valid_from is not None and coupon.valid_from > now:
        raise refuse("NOT_STARTED")
    if not _applies_to_hold(coupon, hold):
        raise refuse("NOT_APPLICABLE")
    units = [
        (item.tier_id, item.unit_price_minor) for item in hold.items for _ in range(item.quantity)
    ]
    prices = [price for _, price in units]
    kept = promotion_discount_minor if coupon.stackable else 0
    shares = spread(kept, prices)
    base = sum(
        price - share
        for (tier_id, price), share in zip(units, shares, strict=True)
        if coupon.tier_id is None or tier_id == coupon.tier_id
    )
    if base < coupon.min_spend_minor:
        raise refuse("MIN_SPEND_NOT_MET")
    return CouponQuote(coupon_discount(coupon, base), kept)


async def coupon_step(context: PricingContext, breakdown: Breakdown) -> None:
    """The pricing step: check the order's coupon, price it, lock it to the order."""
    if context.user_coupon_id is None:
        return
    session, now = context.session, utcnow()
    user_coupon = await session.get(UserCoupon, context.user_coupon_id)
    if user_coupon is None or not context.user_id or user_coupon.user_id != context.user_id:
        raise refuse("NOT_FOUND")
    coupon = await session.get(Coupon, user_coupon.coupon_id)
    assert coupon is not None
    priced = quote(
        coupon,
        user_coupon,
        hold=context.hold,
        promotion_discount_minor=breakdown.promotion_discount_minor,
        now=now,
    )
    locked = await session.exec(
        update(UserCoupon)
        .where(
            col(UserCoupon.id) == user_coupon.id,
            col(UserCoupon.status) == UserCouponStatus.UNUSED,
        )
        .values(status=UserCouponStatus.USED, order_id=context.order_id, used_at=now)
    )
    if locked.rowcount != 1:
        raise refuse("USED")
    if priced.promotion_discount_minor != breakdown.promotion_discount_minor:
        breakdown.promotion_discount_minor, breakdown.promotion_id = 0, None
    breakdown.coupon_discount_minor = priced.discount_minor
    breakdown.user_coupon_id = user_coupon.id


async def release_coupon(session: AsyncSession, order: Order) -> bool:
    """Give the order's coupon back to its owner (unpaid order cancelled or expired, or a
    full refund), inside ``session``'s transaction. False when there was nothing to give."""
    if order.user_coupon_id is None:
        return False
    released = await session.exec(
        update(UserCoupon)
        .where(
            col(UserCoupon.id) == order.user_coupon_id,
            col(UserCoupon.order_id) == order.id,
            col(UserCoupon.status) == UserCouponStatus.USED,
        )
        .values(status=UserCouponStatus.UNUSED, order_id=None, used_at=None)
    )
    return released.rowcount == 1


async def retake_coupon(session: AsyncSession, order: Order) -> bool:
    """Lock the order's coupon to it again (a late payment revives the order). False when the
    coupon is in use elsewhere: the order cannot be revived at the price it was paid."""
    if order.user_coupon_id is None:
        return True
    taken = await session.exec(
        update(UserCoupon)
        .where(
            col(UserCoupon.id) == order.user_coupon_id,
            col(UserCoupon.user_id) == order.user_id,
            col(UserCoupon.status) == UserCouponStatus.UNUSED,
        )
        .values(status=UserCouponStatus.USED, order_id=order.id, used_at=utcnow())
    )
    return taken.rowcount == 1


DISCOUNT_STEPS.extend([promotions.promotion_step, coupon_step])
orders.RELEASE_HOOKS.append(release_coupon)
orders.REVIVE_HOOKS.append(retake_coupon)
