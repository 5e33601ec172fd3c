"""Factories for coupons, promotions and many customers, through the services; and the
check every test that makes an order runs: its amounts add up."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import select

from boxoffice.models.coupons import Coupon, CouponKind, Promotion, PromotionKind
from boxoffice.models.identity import Role, Tenant, User
from boxoffice.models.orders import Order, OrderItem
from boxoffice.runtime import Runtime
from boxoffice.services import coupons, promotions
from boxoffice.services.coupon_claims import claim_coupon
from boxoffice.services.user_coupons import OwnedCoupon
from boxoffice.services.viewer import Viewer
from tests.catalog_factories import OPERATOR


def organizer_of(tenant: Tenant, user_id: str = "organizer-for-tests") -> Viewer:
    return Viewer(user_id=user_id, tenant_roles={tenant.id: frozenset({Role.ORGANIZER})})


def customer(user: User | str) -> Viewer:
    user_id = user if isinstance(user, str) else user.id
    return Viewer(user_id=user_id, roles=frozenset({Role.CUSTOMER}))


async def make_coupon(
    rt: Runtime,
    *,
    by: Viewer = OPERATOR,
    kind: CouponKind = CouponKind.FIXED,
    value: str = "20.00",
    total_quantity: int = 100,
    name: str = "Spring coupon",
    **kw: Any,
) -> Coupon:
    for key in ("min_spend", "max_discount"):
        if isinstance(kw.get(key), str):
            kw[key] = Decimal(kw[key])
    return await coupons.create_coupon(
        db=rt.db,
        viewer=by,
        name=name,
        kind=kind,
        value=Decimal(value),
        total_quantity=total_quantity,
        **kw,
    )


async def make_promotion(
    rt: Runtime,
    event_id: str,
    *,
    by: Viewer = OPERATOR,
    kind: PromotionKind = PromotionKind.THRESHOLD,
    name: str = "满减",
    **kw: Any,
) -> Promotion:
    for key in ("threshold", "amount_off", "percent_off", "max_discount"):
        if isinstance(kw.get(key), str):
            kw[key] = Decimal(kw[key])
    return await promotions.create_promotion(
        db=rt.db, viewer=by, event_id=event_id, name=name, kind=kind, **kw
    )


async def make_customers(rt: Runtime, n: int, prefix: str = "fan") -> list[User]:
    """``n`` customers in one transaction (no passwords: they never sign in)."""
    users = [User(email=f"{prefix}{i}@example.com", roles=[Role.CUSTOMER]) for i in range(n)]
    async with rt.db.write() as session:
        session.add_all(users)
    return users


async def claimed(rt: Runtime, user: User, coupon: Coupon) -> OwnedCoupon:
    return await claim_coupon(db=rt.db, viewer=customer(user), coupon_id=coupon.id)


async def assert_order_adds_up(rt: Runtime, order: Order) -> list[OrderItem]:
    """total = subtotal − promotion − coupon, never below zero, and the units' prices after
    discounts add up to the total (each between zero and its list price)."""
    async with rt.db.read() as session:
        stored = await session.get(Order, order.id)
        items = list(
            (await session.exec(select(OrderItem).where(OrderItem.order_id == order.id))).all()
        )
    assert stored is not None
    assert stored.total_minor == (
        stored.subtotal_minor - stored.promotion_discount_minor - stored.coupon_discount_minor
    )
    assert stored.total_minor >= 0
    assert stored.subtotal_minor == sum(i.unit_price_minor for i in items)
    assert sum(i.paid_minor for i in items) == stored.total_minor
    assert all(0 <= i.paid_minor <= i.unit_price_minor for i in items)
    return items


def assert_order_json_adds_up(order: dict[str, Any]) -> None:
    """The same check on an Order as the API shows it (``subtotal promotionDiscount
    couponDiscount discount total items { price }`` as decimal strings)."""

    def amount(money: dict[str, str]) -> Decimal:
        return Decimal(money["amount"])

    subtotal, total = amount(order["subtotal"]), amount(order["total"])
    promotion, coupon = amount(order["promotionDiscount"]), amount(order["couponDiscount"])
    assert total == subtotal - promotion - coupon
    assert amount(order["discount"]) == promotion + coupon
    assert total >= 0
    assert sum(amount(item["price"]) for item in order["items"]) == total
