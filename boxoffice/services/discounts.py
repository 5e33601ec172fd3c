"""The arithmetic of discounts, exact and in minor units (fen).

Percentages are basis points (1 % = 100 bp) applied with ``Decimal``:
``amount × bp / 10000``, rounded half-up to a whole fen (``money.round_minor``), then capped
by the maximum discount if there is one. No discount ever exceeds the amount it applies to,
so a total never goes below zero.

Promotions (``promotion_discount``) see the hold's subtotal. Coupons
(``coupon_discount``) see their *base*: the price of the units in the coupon's scope, less
those units' share of the promotion (shared out as ``pricing.spread`` shares every discount
over units), or their full price when the coupon does not stack with promotions.
"""

from __future__ import annotations

from decimal import Decimal

from boxoffice.models.coupons import Coupon, CouponKind, Promotion, PromotionKind
from boxoffice.money import round_minor

BP_PER_WHOLE = 10_000


def percent_of(amount_minor: int, bp: int) -> int:
    """``bp`` basis points of ``amount_minor``, rounded half-up to a whole minor unit."""
    return round_minor(Decimal(amount_minor) * Decimal(bp) / Decimal(BP_PER_WHOLE))


def _bounded(discount: int, amount_minor: int, cap_minor: int | None) -> int:
    if cap_minor is not None:
        discount = min(discount, cap_minor)
    return max(0, min(discount, amount_minor))


def promotion_discount(promotion: Promotion, subtotal_minor: int) -> int:
    """What ``promotion`` takes off ``subtotal_minor`` (0 below its threshold)."""
    if subtotal_minor <= 0 or subtotal_minor < promotion.threshold_minor:
        return 0
    if promotion.kind is PromotionKind.THRESHOLD:
        amount = promotion.amount_off_minor or 0
        times = subtotal_minor // promotion.threshold_minor if promotion.repeat else 1
        discount = amount * times
    else:
        discount = percent_of(subtotal_minor, promotion.percent_off_bp or 0)
    return _bounded(discount, subtotal_minor, promotion.max_discount_minor)


def coupon_discount(coupon: Coupon, base_minor: int) -> int:
    """What ``coupon`` takes off ``base_minor`` (the minimum spend is checked by the caller)."""
    if coupon.kind is CouponKind.FIXED:
        discount = coupon.amount_off_minor or 0
    else:
        discount = percent_of(base_minor, coupon.percent_off_bp or 0)
    return _bounded(discount, base_minor, coupon.max_discount_minor)
