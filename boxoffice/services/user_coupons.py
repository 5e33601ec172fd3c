"""A person's coupons: ``myCoupons`` by status, and ``availableCoupons`` for a hold.

``available_coupons`` prices every usable coupon against the hold exactly as checkout would
(the event's best promotion, then ``coupon_redemption.quote``) and puts the best first: the
lowest order total, then the biggest coupon discount, then the one that expires soonest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import CouponUnavailable
from boxoffice.models.coupons import Coupon, CouponStatus, UserCoupon, UserCouponStatus
from boxoffice.services import inventory
from boxoffice.services.coupon_redemption import effective_status, quote
from boxoffice.services.orders import OrderDeps
from boxoffice.services.pagination import page_size
from boxoffice.services.promotions import best_promotion
from boxoffice.services.viewer import Viewer

MAX_LISTED = 200
MAX_CONSIDERED = 500
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class OwnedCoupon:
    """A person's coupon with its template, and — for ``availableCoupons`` — what it would
    take off the hold and the order's total with it."""

    user_coupon: UserCoupon
    coupon: Coupon
    status: UserCouponStatus
    discount_minor: int | None = None
    promotion_discount_minor: int | None = None
    order_total_minor: int | None = None


def owned(user_coupon: UserCoupon, coupon: Coupon, now: datetime | None = None) -> OwnedCoupon:
    return OwnedCoupon(user_coupon, coupon, effective_status(user_coupon, coupon, now or utcnow()))


def _status_conditions(status: UserCouponStatus | None, now: datetime) -> list[Any]:
    live = [
        col(Coupon.status) != CouponStatus.ENDED,
        or_(col(Coupon.valid_to).is_(None), col(Coupon.valid_to) > now),
    ]
    unused = col(UserCoupon.status) == UserCouponStatus.UNUSED
    if status is UserCouponStatus.UNUSED:
        return [unused, *live]
    if status is UserCouponStatus.USED:
        return [col(UserCoupon.status) == UserCouponStatus.USED]
    if status is UserCouponStatus.EXPIRED:
        return [
            unused,
            or_(col(Coupon.status) == CouponStatus.ENDED, col(Coupon.valid_to) <= now),
        ]
    return []


async def my_coupons(
    *,
    db: Database,
    viewer: Viewer,
    status: UserCouponStatus | None = None,
    first: int | None = None,
) -> list[OwnedCoupon]:
    """The caller's coupons (of one status, or all), newest first, at most ``first``."""
    user_id = viewer.require_user()
    size = page_size(first, default=MAX_LISTED, maximum=MAX_LISTED)
    now = utcnow()
    async with db.read() as session:
        rows = await session.exec(
            select(UserCoupon, Coupon)
            .join(Coupon, col(Coupon.id) == col(UserCoupon.coupon_id))
            .where(col(UserCoupon.user_id) == user_id, *_status_conditions(status, now))
            .order_by(col(UserCoupon.claimed_at).desc(), col(UserCoupon.id).desc())
            .limit(size)
        )
        return [owned(uc, coupon, now) for uc, coupon in rows.all()]


async def available_coupons(
    *, deps: OrderDeps, viewer: Viewer, hold_token: str
) -> list[OwnedCoupon]:
    """The caller's coupons that checkout would accept for the caller's hold, each with its
    discount and the order's total, best first. Raises HOLD_NOT_FOUND / HOLD_EXPIRED."""
    user_id = viewer.require_user()
    hold = await inventory.get_hold(
        db=deps.db, ledger=deps.ledger, rules_cache=deps.rules, viewer=viewer, token=hold_token
    )
    now = utcnow()
    async with deps.db.read() as session:
        promotion = await best_promotion(
            session,
            event_id=hold.event_id,
            currency=hold.currency,
            subtotal_minor=hold.total_minor,
            now=now,
        )
        rows = (
            await session.exec(
                select(UserCoupon, Coupon)
                .join(Coupon, col(Coupon.id) == col(UserCoupon.coupon_id))
                .where(
                    col(UserCoupon.user_id) == user_id,
                    *_status_conditions(UserCouponStatus.UNUSED, now),
                )
                .order_by(col(UserCoupon.claimed_at), col(UserCoupon.id))
                .limit(MAX_CONSIDERED)
            )
        ).all()
    promotion_minor = promotion[1] if promotion else 0
    offers: list[OwnedCoupon] = []
    for user_coupon, coupon in rows:
        try:
            priced = quote(
                coupon, user_coupon, hold=hold, promotion_discount_minor=promotion_minor, now=now
            )
        except CouponUnavailable:
            continue
        offers.append(
            OwnedCoupon(
                user_coupon,
                coupon,
                UserCouponStatus.UNUSED,
                discount_minor=priced.discount_minor,
                promotion_discount_minor=priced.promotion_discount_minor,
                order_total_minor=hold.total_minor
                - priced.promotion_discount_minor
                - priced.discount_minor,
            )
        )
    offers.sort(
        key=lambda o: (
            o.order_total_minor,
            -(o.discount_minor or 0),
            o.coupon.valid_to or _FAR_FUTURE,
            o.user_coupon.id,
        )
    )
    return offers
