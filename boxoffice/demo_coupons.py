"""Demo coupons and a promotion for ``boxoffice seed-demo`` (found by code and by name when
they exist, so re-running creates nothing twice)."""

from __future__ import annotations

from decimal import Decimal

from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.models.coupons import Coupon, CouponKind, Promotion, PromotionKind
from boxoffice.models.events import Event, EventStatus
from boxoffice.models.identity import Role, Tenant, User
from boxoffice.runtime import Runtime
from boxoffice.services import coupons, promotions
from boxoffice.services.catalog_statuses import event_status
from boxoffice.services.viewer import Viewer

PROMOTION_NAME = "每满1000减200"


async def _coupon(rt: Runtime, viewer: Viewer, code: str, **terms: object) -> Coupon:
    async with rt.db.read() as session:
        found = (await session.exec(select(Coupon).where(Coupon.code == code))).first()
    if found is not None:
        return found
    return await coupons.create_coupon(db=rt.db, viewer=viewer, code=code, **terms)  # type: ignore[arg-type]


async def seed_coupons(rt: Runtime, tenants: list[Tenant], operator: User) -> list[str]:
    """A platform coupon, a tenant's percentage coupon, and 满减 on an event on sale."""
    viewer = Viewer(user_id=operator.id, roles=frozenset({Role.OPERATOR}))
    made = [
        await _coupon(
            rt,
            viewer,
            "WELCOME30",
            name="新人立减30元",
            kind=CouponKind.FIXED,
            value=Decimal("30.00"),
            min_spend=Decimal("200.00"),
            total_quantity=10_000,
        ),
        await _coupon(
            rt,
            viewer,
            "LAUGH-90",
            name="笑声实验室九折券",
            kind=CouponKind.PERCENT,
            value=Decimal("10"),
            max_discount=Decimal("50.00"),
            total_quantity=500,
            tenant_id=tenants[0].id,
            stackable=False,
        ),
    ]
    lines = [f"coupon  {c.code}  {c.name}" for c in made]
    async with rt.db.read() as session:
        existing = (
            await session.exec(select(Promotion).where(Promotion.name == PROMOTION_NAME))
        ).first()
        events = (
            await session.exec(select(Event).order_by(col(Event.created_at), col(Event.id)))
        ).all()
    if existing is None:
        now = utcnow()
        on_sale = [e for e in events if event_status(e, now) is EventStatus.ON_SALE]
        if not on_sale:
            return lines
        existing = await promotions.create_promotion(
            db=rt.db,
            viewer=viewer,
            event_id=on_sale[0].id,
            name=PROMOTION_NAME,
            kind=PromotionKind.THRESHOLD,
            threshold=Decimal("1000"),
            amount_off=Decimal("200"),
            repeat=True,
        )
    title = next((e.title for e in events if e.id == existing.event_id), "")
    lines.append(f"promo   {PROMOTION_NAME}  {title}")
    return lines
