"""Coupon templates: who may create which, one test per validation rule, codes, status
changes, the staff list scoped by tenant, and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.errors import AlreadyExists, BadUserInput, Forbidden, NotFound
from boxoffice.models.coupons import CouponKind, CouponScope, CouponStatus
from boxoffice.models.identity import AuditEntry
from boxoffice.runtime import Runtime
from boxoffice.services import coupons
from boxoffice.services.viewer import Viewer
from tests.catalog_factories import OPERATOR
from tests.coupon_factories import customer, make_coupon, organizer_of
from tests.helpers import make_tenant, make_user
from tests.order_factories import on_sale


async def test_operators_make_platform_coupons_with_a_generated_code(rt: Runtime):
    coupon = await make_coupon(rt, kind=CouponKind.PERCENT, value="12.5", max_discount="40")
    assert coupon.scope is CouponScope.PLATFORM
    assert coupon.tenant_id is None
    assert (coupon.percent_off_bp, coupon.max_discount_minor) == (1250, 4000)
    assert len(coupon.code) == coupons.CODE_LENGTH
    assert set(coupon.code) <= set(coupons.CODE_ALPHABET)
    assert (coupon.status, coupon.claimed, coupon.per_user_limit) == (CouponStatus.ACTIVE, 0, 1)
    async with rt.db.read() as session:
        entry = (await session.exec(select(AuditEntry))).one()
    assert (entry.action, entry.target_id) == ("coupon.create", coupon.id)


async def test_organizers_scope_coupons_to_their_tenant_event_or_tier(rt: Runtime):
    # given an organizer of a tenant with a session on sale
    sale = await on_sale(rt)
    organizer = organizer_of(sale.tenant)
    # then without a scope the coupon is their tenant's; else the event's or the tier's
    tenant_wide = await make_coupon(rt, by=organizer)
    for_event = await make_coupon(rt, by=organizer, event_id=sale.event.id)
    for_tier = await make_coupon(rt, by=organizer, tier_id=sale.seated.id)
    assert (tenant_wide.scope, tenant_wide.tenant_id) == (CouponScope.TENANT, sale.tenant.id)
    assert (for_event.scope, for_event.event_id) == (CouponScope.EVENT, sale.event.id)
    assert (for_tier.scope, for_tier.tier_id, for_tier.event_id, for_tier.tenant_id) == (
        CouponScope.TIER,
        sale.seated.id,
        sale.event.id,
        sale.tenant.id,
    )


async def test_another_tenants_event_tier_or_coupon_is_not_found(rt: Runtime):
    # given two tenants and an organizer of the first
    mine = await make_tenant(rt, "Mine")
    theirs = await on_sale(rt)
    organizer = organizer_of(mine)
    # then the other tenant's tenant, event and tier answer NOT_FOUND naming the field
    for field, kwargs in (
        ("tenantId", {"tenant_id": theirs.tenant.id}),
        ("eventId", {"event_id": theirs.event.id}),
        ("tierId", {"tier_id": theirs.ga.id}),
    ):
        with pytest.raises(NotFound) as missing:
            await make_coupon(rt, by=organizer, **kwargs)
        assert missing.value.extensions()["field"] == field
    # and so do the other tenant's coupons
    their_coupon = await make_coupon(rt, tenant_id=theirs.tenant.id)
    with pytest.raises(NotFound):
        await coupons.set_status(
            db=rt.db, viewer=organizer, coupon_id=their_coupon.id, status=CouponStatus.PAUSED
        )
    with pytest.raises(NotFound):
        await coupons.managed_coupon(db=rt.db, viewer=organizer, coupon_id=their_coupon.id)
    # as does a platform coupon for an organizer
    platform = await make_coupon(rt)
    with pytest.raises(NotFound):
        await coupons.managed_coupon(db=rt.db, viewer=organizer, coupon_id=platform.id)


async def test_only_staff_create_coupons_and_only_operators_platform_ones(rt: Runtime):
    user = await make_user(rt, "buyer@example.com")
    with pytest.raises(Forbidden):
        await make_coupon(rt, by=customer(user))
    several = Viewer(
        user_id="multi",
        tenant_roles={
            (await make_tenant(rt, "One")).id: frozenset({"ORGANIZER"}),
            (await make_tenant(rt, "Two")).id: frozenset({"ORGANIZER"}),
        },
    )
    with pytest.raises(BadUserInput) as which:
        await make_coupon(rt, by=several)
    assert which.value.field == "tenantId"
    gate = Viewer(user_id="gate", tenant_roles={"t": frozenset({"CHECKIN"})})
    with pytest.raises(Forbidden):
        await make_coupon(rt, by=gate)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("name", {"name": "  "}),
        ("value", {"value": "0"}),
        ("value", {"value": "-5"}),
        ("value", {"value": "1.234"}),
        ("value", {"kind": CouponKind.PERCENT, "value": "100.01"}),
        ("value", {"kind": CouponKind.PERCENT, "value": "0.001"}),
        ("maxDiscount", {"max_discount": "10"}),  # FIXED has no cap
        ("maxDiscount", {"kind": CouponKind.PERCENT, "value": "10", "max_discount": "0"}),
        ("totalQuantity", {"total_quantity": 0}),
        ("totalQuantity", {"total_quantity": coupons.MAX_TOTAL_QUANTITY + 1}),
        ("perUserLimit", {"per_user_limit": 0}),
        ("perUserLimit", {"total_quantity": 2, "per_user_limit": 3}),
        ("minSpend", {"min_spend": "-1"}),
        ("code", {"code": "a b"}),
        ("code", {"code": "ab"}),
        ("description", {"description": "x" * 501}),
    ],
)
async def test_each_rule_names_its_field(rt: Runtime, field: str, kwargs: dict[str, object]):
    with pytest.raises(BadUserInput) as bad:
        await make_coupon(rt, **kwargs)
    assert bad.value.field == field


async def test_the_validity_window(rt: Runtime):
    now = utcnow()
    with pytest.raises(BadUserInput) as backwards:
        await make_coupon(rt, valid_from=now + timedelta(days=2), valid_to=now + timedelta(days=1))
    assert backwards.value.field == "validTo"
    with pytest.raises(BadUserInput) as past:
        await make_coupon(rt, valid_to=now - timedelta(minutes=1))
    assert past.value.field == "validTo"
    with pytest.raises(BadUserInput) as naive:
        await make_coupon(rt, valid_from=now.replace(tzinfo=None))
    assert naive.value.field == "validFrom"


async def test_the_tier_must_be_the_events(rt: Runtime):
    sale = await on_sale(rt)
    other = await on_sale(rt, tenant=sale.tenant)
    with pytest.raises(BadUserInput) as mismatch:
        await make_coupon(rt, event_id=other.event.id, tier_id=sale.ga.id)
    assert mismatch.value.field == "tierId"


async def test_chosen_codes_are_normalised_and_unique(rt: Runtime):
    first = await make_coupon(rt, code=" spring-2026 ")
    assert first.code == "SPRING-2026"
    with pytest.raises(AlreadyExists) as taken:
        await make_coupon(rt, code="SPRING-2026")
    assert taken.value.extensions()["field"] == "code"


async def test_pause_resume_end_and_nothing_after_the_end(rt: Runtime):
    coupon = await make_coupon(rt)

    async def to(status: CouponStatus) -> CouponStatus:
        changed = await coupons.set_status(
            db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, status=status
        )
        return changed.status

    assert await to(CouponStatus.PAUSED) is CouponStatus.PAUSED
    assert await to(CouponStatus.PAUSED) is CouponStatus.PAUSED  # no change, no error
    assert await to(CouponStatus.ACTIVE) is CouponStatus.ACTIVE
    assert await to(CouponStatus.ENDED) is CouponStatus.ENDED
    for status in (CouponStatus.ACTIVE, CouponStatus.PAUSED):
        with pytest.raises(BadUserInput) as final:
            await to(status)
        assert final.value.extensions()["reason"] == "ENDED"
    async with rt.db.read() as session:
        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert sorted(actions) == sorted(
        ["coupon.create", "coupon.pause", "coupon.resume", "coupon.end"]
    )


async def test_the_staff_list_is_scoped_and_paged(rt: Runtime):
    # given coupons of two tenants and of the platform
    sale = await on_sale(rt)
    other = await make_tenant(rt, "Other")
    organizer = organizer_of(sale.tenant)
    mine = [await make_coupon(rt, by=organizer, name=f"Mine {i}") for i in range(3)]
    await make_coupon(rt, tenant_id=other.id, name="Theirs")
    platform = await make_coupon(rt, name="Platform")
    ended = mine[0]
    await coupons.set_status(
        db=rt.db, viewer=organizer, coupon_id=ended.id, status=CouponStatus.ENDED
    )
    # then the organizer sees their tenant's, newest first, two per page
    page = await coupons.list_coupons(db=rt.db, viewer=organizer, first=2)
    assert [c.id for c in page.items] == [mine[2].id, mine[1].id]
    assert page.has_next_page
    rest = await coupons.list_coupons(db=rt.db, viewer=organizer, first=2, after=page.end_cursor)
    assert [c.id for c in rest.items] == [mine[0].id]
    assert await coupons.count_coupons(db=rt.db, viewer=organizer) == 3
    ended_only = await coupons.list_coupons(db=rt.db, viewer=organizer, status=CouponStatus.ENDED)
    assert [c.id for c in ended_only.items] == [ended.id]
    # the operator sees the platform's without a tenant, and any tenant's with one
    platform_page = await coupons.list_coupons(db=rt.db, viewer=OPERATOR)
    assert [c.id for c in platform_page.items] == [platform.id]
    assert await coupons.count_coupons(db=rt.db, viewer=OPERATOR, tenant_id=other.id) == 1
    # and the organizer asking for the other tenant's list gets NOT_FOUND
    with pytest.raises(NotFound):
        await coupons.list_coupons(db=rt.db, viewer=organizer, tenant_id=other.id)


async def test_amounts_are_exact_decimals(rt: Runtime):
    coupon = await coupons.create_coupon(
        db=rt.db,
        viewer=OPERATOR,
        name="Exact",
        kind=CouponKind.FIXED,
        value=Decimal("0.10"),
        total_quantity=1,
        min_spend=Decimal("99.99"),
    )
    assert (coupon.amount_off_minor, coupon.min_spend_minor) == (10, 9999)
