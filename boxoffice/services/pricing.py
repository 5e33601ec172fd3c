"""What an order costs: the hold's price snapshot, then promotions, then a coupon.

Discounts are whole minor units (fen). A discount is spread over the order's units in
proportion to their prices, rounding down, and the last unit takes the remainder, so the item
amounts always add up to the order's total and a partial refund returns exactly what was paid
for the refunded units. A total never goes below zero.

Discount steps are pluggable: the promotions and coupon features register theirs in
``DISCOUNT_STEPS`` (each sees the breakdown so far and returns its discount).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.errors import CouponUnavailable
from boxoffice.services.inventory import HoldView


@dataclass
class Breakdown:
    unit_prices: list[int]  # one per unit, in item order
    promotion_discount_minor: int = 0
    coupon_discount_minor: int = 0
    promotion_id: str | None = None
    user_coupon_id: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def subtotal_minor(self) -> int:
        return sum(self.unit_prices)

    @property
    def discount_minor(self) -> int:
        return self.promotion_discount_minor + self.coupon_discount_minor

    @property
    def total_minor(self) -> int:
        return max(0, self.subtotal_minor - self.discount_minor)

    def unit_discounts(self) -> list[int]:
        return spread(self.discount_minor, self.unit_prices)


@dataclass(frozen=True)
class PricingContext:
    session: AsyncSession  # the order's transaction: steps may lock and consume there
    hold: HoldView
    user_id: str
    user_coupon_id: str | None
    order_id: str


DiscountStep = Callable[[PricingContext, Breakdown], Awaitable[None]]
DISCOUNT_STEPS: list[DiscountStep] = []


def spread(discount: int, prices: list[int]) -> list[int]:
    """Split ``discount`` over ``prices`` proportionally (see the module docstring)."""
    total = sum(prices)
    discount = min(discount, total)
    if not prices or discount <= 0:
        return [0] * len(prices)
    shares = [discount * p // total for p in prices[:-1]]
    shares.append(discount - sum(shares))
    return shares


async def price_order(context: PricingContext) -> Breakdown:
    """The order's breakdown. Raises ``CouponUnavailable`` for a coupon no step accepted."""
    prices: list[int] = []
    for item in context.hold.items:
        prices.extend([item.unit_price_minor] * item.quantity)
    breakdown = Breakdown(unit_prices=prices)
    for step in DISCOUNT_STEPS:
        await step(context, breakdown)
    if context.user_coupon_id and breakdown.user_coupon_id != context.user_coupon_id:
        raise CouponUnavailable("This coupon cannot be used here.", reason="NOT_FOUND")
    return breakdown
