"""Event promotions: made by the event's organizers, validated per kind, listed (running ones
for everyone, all for staff), applied only while running."""

from __future__ import annotations

from datetime import timedelta

import pytest

from boxoffice.clock import utcnow
from boxoffice.errors import BadUserInput, Forbidden, NotFound
from boxoffice.models.coupons import PromotionKind, PromotionStatus
from boxoffice.runtime import Runtime
from boxoffice.services import promotions
from boxoffice.services.viewer import ANONYMOUS
from tests.catalog_factories import OPERATOR, make_event, make_venue
from tests.coupon_factories import assert_order_adds_up, customer, make_promotion, organizer_of
from tests.helpers import make_tenant, make_user
from tests.order_factories import hold_for, on_sale, order_for


async def test_the_events_organizer_makes_promotions_others_cannot(rt: Runtime):
    sale = await on_sale(rt)
    made = await make_promotion(
        rt, sale.event.id, by=organizer_of(sale.tenant), threshold="1000", amount_off="200"
    )
    assert (made.tenant_id, made.threshold_minor, made.amount_off_minor) == (
        sale.tenant.id,
        100000,
        20000,
    )
    stranger = organizer_of(await make_tenant(rt, "Elsewhere"), user_id="stranger")
    with pytest.raises(NotFound):
        await make_promotion(rt, sale.event.id, by=stranger, threshold="10", amount_off="1")
    with pytest.raises(NotFound):
        await promotions.end_promotion(db=rt.db, viewer=stranger, promotion_id=made.id)
    buyer = await make_user(rt, "buyer@example.com")
    with pytest.raises(Forbidden):
        await make_promotion(rt, sale.event.id, by=customer(buyer), threshold="10", amount_off="1")


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("threshold", {"amount_off": "10"}),
        ("amountOff", {"threshold": "100"}),
        ("amountOff", {"threshold": "100", "amount_off": "150"}),
        ("amountOff", {"threshold": "100", "amount_off": "0"}),
        ("percentOff", {"threshold": "100", "amount_off": "10", "percent_off": "5"}),
        ("maxDiscount", {"threshold": "100", "amount_off": "10", "max_discount": "50"}),
        ("percentOff", {"kind": PromotionKind.PERCENT}),
        ("percentOff", {"kind": PromotionKind.PERCENT, "percent_off": "120"}),
        ("amountOff", {"kind": PromotionKind.PERCENT, "percent_off": "5", "amount_off": "1"}),
        ("repeat", {"kind": PromotionKind.PERCENT, "percent_off": "5", "repeat": True}),
        ("name", {"name": "", "threshold": "100", "amount_off": "10"}),
    ],
)
async def test_each_rule_names_its_field(rt: Runtime, field: str, kwargs: dict[str, object]):
    sale = await on_sale(rt)
    with pytest.raises(BadUserInput) as bad:
        await make_promotion(rt, sale.event.id, **kwargs)
    assert bad.value.field == field


async def test_only_running_promotions_apply_and_are_listed_publicly(rt: Runtime):
    # given a running promotion, a future one and an ended one
    sale = await on_sale(rt)
    running = await make_promotion(rt, sale.event.id, threshold="100", amount_off="10")
    await make_promotion(
        rt,
        sale.event.id,
        threshold="100",
        amount_off="90",
        valid_from=utcnow() + timedelta(days=1),
    )
    ended = await make_promotion(rt, sale.event.id, threshold="100", amount_off="80")
    assert (
        await promotions.end_promotion(db=rt.db, viewer=OPERATOR, promotion_id=ended.id)
    ).status is PromotionStatus.ENDED
    # then the public sees the running one, staff all three
    public = await promotions.list_promotions(db=rt.db, viewer=ANONYMOUS, event_id=sale.event.id)
    assert [p.id for p in public] == [running.id]
    staff = await promotions.list_promotions(
        db=rt.db, viewer=organizer_of(sale.tenant), event_id=sale.event.id
    )
    assert len(staff) == 3
    # and an order gets the running one only
    user = await make_user(rt, "promo@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    assert (order.promotion_id, order.promotion_discount_minor) == (running.id, 1000)
    await assert_order_adds_up(rt, order)


async def test_a_capped_percent_promotion_from_a_threshold(rt: Runtime):
    sale = await on_sale(rt)
    await make_promotion(
        rt,
        sale.event.id,
        kind=PromotionKind.PERCENT,
        percent_off="20",
        threshold="300",
        max_discount="100",
    )
    user = await make_user(rt, "percent@example.com")
    below = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    assert below.promotion_discount_minor == 0  # 180.00 is under the 300.00 threshold
    above = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:3])
    )
    assert above.promotion_discount_minor == 10000  # 20 % of 1140.00 capped at 100.00
    for order in (below, above):
        await assert_order_adds_up(rt, order)


async def test_a_draft_events_promotions_are_not_found_for_the_public(rt: Runtime):
    # given a draft event with a promotion being prepared
    tenant = await make_tenant(rt, "Drafting")
    draft = await make_event(rt, tenant, await make_venue(rt, tenant), "Not yet")
    await make_promotion(rt, draft.id, threshold="100", amount_off="10")
    # then the public cannot see it, its staff can
    for event_id in (draft.id, "no-such-event"):
        with pytest.raises(NotFound):
            await promotions.list_promotions(db=rt.db, viewer=ANONYMOUS, event_id=event_id)
    staff = await promotions.list_promotions(
        db=rt.db, viewer=organizer_of(tenant), event_id=draft.id
    )
    assert len(staff) == 1
