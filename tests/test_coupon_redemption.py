"""Coupons and promotions at checkout: checked again, priced exactly, locked to one order,
given back by cancel and expiry (and taken again by a late payment that revives the order);
``availableCoupons`` offers what checkout charges. Every order's amounts add up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlmodel import col, select, update

from boxoffice.clock import utcnow
from boxoffice.errors import CouponUnavailable
from boxoffice.models.coupons import (
    Coupon,
    CouponKind,
    CouponSource,
    CouponStatus,
    PromotionKind,
    UserCoupon,
    UserCouponStatus,
)
from boxoffice.models.events import EventSession, TicketTier
from boxoffice.models.identity import User
from boxoffice.models.orders import CallbackVerdict, Order, OrderStatus, Payment, PaymentStatus
from boxoffice.models.venues import Seat
from boxoffice.providers.payments import PaymentChannel
from boxoffice.runtime import Runtime
from boxoffice.services import coupons, orders, payments, promotions
from boxoffice.services.coupon_claims import grant
from boxoffice.services.coupon_redemption import release_coupon
from boxoffice.services.user_coupons import available_coupons, my_coupons
from tests.catalog_factories import (
    OPERATOR,
    make_event,
    make_seat_map,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.coupon_factories import (
    assert_order_adds_up,
    claimed,
    customer,
    make_coupon,
    make_promotion,
)
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import (
    hold_for,
    on_sale,
    order_for,
    pay,
    sandbox_callback,
    start_sandbox_payment,
)


async def user_coupon(rt: Runtime, user_coupon_id: str) -> UserCoupon:
    async with rt.db.read() as session:
        found = await session.get(UserCoupon, user_coupon_id)
    assert found is not None
    return found


async def refused(call: object) -> str:
    with pytest.raises(CouponUnavailable) as exc:
        await call  # type: ignore[misc]
    return str(exc.value.extensions()["reason"])


async def test_a_fixed_coupon_takes_its_amount_off_and_is_locked_to_the_order(rt: Runtime):
    # given a customer holding two GA tickets (2 × 180.00) and a 20.00 coupon
    sale = await on_sale(rt)
    user = await make_user(rt, "fixed@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="20.00"))
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=2)
    # when the order uses the coupon
    order = await order_for(rt, user, held, user_coupon_id=mine.user_coupon.id)
    # then 20.00 comes off, the items add up, and the coupon belongs to this order
    assert (order.subtotal_minor, order.coupon_discount_minor, order.total_minor) == (
        36000,
        2000,
        34000,
    )
    assert order.user_coupon_id == mine.user_coupon.id
    items = await assert_order_adds_up(rt, order)
    assert sorted(i.discount_minor for i in items) == [1000, 1000]
    used = await user_coupon(rt, mine.user_coupon.id)
    assert (used.status, used.order_id) == (UserCouponStatus.USED, order.id)


async def test_promotion_first_then_a_percent_coupon_on_what_is_left(rt: Runtime):
    # given 满300减50 on the event and a 15 % coupon
    sale = await on_sale(rt)
    await make_promotion(rt, sale.event.id, threshold="300.00", amount_off="50.00")
    user = await make_user(rt, "stack@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, kind=CouponKind.PERCENT, value="15"))
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)
    # when three GA tickets (540.00) are ordered with it
    order = await order_for(rt, user, held, user_coupon_id=mine.user_coupon.id)
    # then 50.00 promotion, 15 % of 490.00 = 73.50 coupon, 416.50 to pay
    assert order.subtotal_minor == 54000
    assert order.promotion_discount_minor == 5000
    assert order.coupon_discount_minor == 7350
    assert order.total_minor == 41650
    assert order.promotion_id is not None
    await assert_order_adds_up(rt, order)


async def test_200_off_every_1000(rt: Runtime):
    # given "200 off every 1000" and six seats at 380.00 (2280.00)
    sale = await on_sale(rt)
    await make_promotion(rt, sale.event.id, threshold="1000", amount_off="200", repeat=True)
    user = await make_user(rt, "every@example.com")
    held = await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:6])
    order = await order_for(rt, user, held)
    # then 400.00 comes off (twice 1000 reached), spread over the seats
    assert (order.subtotal_minor, order.promotion_discount_minor, order.total_minor) == (
        228000,
        40000,
        188000,
    )
    await assert_order_adds_up(rt, order)


async def test_the_best_of_several_promotions_applies_alone(rt: Runtime):
    sale = await on_sale(rt)
    await make_promotion(rt, sale.event.id, threshold="300", amount_off="30")
    best = await make_promotion(rt, sale.event.id, kind=PromotionKind.PERCENT, percent_off="10")
    ended = await make_promotion(rt, sale.event.id, threshold="100", amount_off="100")
    await promotions.end_promotion(db=rt.db, viewer=OPERATOR, promotion_id=ended.id)
    user = await make_user(rt, "best@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)
    )
    assert (order.promotion_id, order.promotion_discount_minor) == (best.id, 5400)
    await assert_order_adds_up(rt, order)


async def test_a_coupon_that_does_not_stack_replaces_the_promotion(rt: Runtime):
    # given 满300减50 and a 10 % coupon that does not combine with promotions
    sale = await on_sale(rt)
    await make_promotion(rt, sale.event.id, threshold="300", amount_off="50")
    user = await make_user(rt, "solo@example.com")
    mine = await claimed(
        rt, user, await make_coupon(rt, kind=CouponKind.PERCENT, value="10", stackable=False)
    )
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)
    order = await order_for(rt, user, held, user_coupon_id=mine.user_coupon.id)
    # then the order has the coupon on the full 540.00 and no promotion
    assert (order.promotion_discount_minor, order.promotion_id) == (0, None)
    assert (order.coupon_discount_minor, order.total_minor) == (5400, 48600)
    await assert_order_adds_up(rt, order)


@dataclass
class TwoTiers:
    session: EventSession
    front: TicketTier  # section A, 380.00
    back: TicketTier  # section B, 180.00
    front_seats: list[str]
    back_seats: list[str]


async def two_tier_sale(rt: Runtime) -> TwoTiers:
    tenant = await make_tenant(rt, "Two Tier Club")
    venue = await make_venue(rt, tenant)
    seat_map = await make_seat_map(rt, venue, {"A": 5, "B": 5}, rows=1)
    event = await make_event(rt, tenant, venue, "Two Tiers")
    session = await make_session(rt, event, seat_map=seat_map)
    front = await make_tier(rt, session, "Front", price="380.00", sections=["A"])
    back = await make_tier(rt, session, "Back", price="180.00", sections=["B"])
    await publish(rt, event)
    async with rt.db.read() as s:
        seats = (await s.exec(select(Seat).where(Seat.seat_map_id == seat_map.id))).all()
    return TwoTiers(
        session,
        front,
        back,
        [x.id for x in seats if x.section == "A"],
        [x.id for x in seats if x.section == "B"],
    )


async def test_a_tier_coupon_counts_only_its_tier_after_its_share_of_the_promotion(rt: Runtime):
    # given a front seat (380.00) and a back seat (180.00), 满500减56, and 50 % off Back
    sale = await two_tier_sale(rt)
    await make_promotion(rt, sale.session.event_id, threshold="500", amount_off="56")
    user = await make_user(rt, "tier@example.com")
    mine = await claimed(
        rt, user, await make_coupon(rt, kind=CouponKind.PERCENT, value="50", tier_id=sale.back.id)
    )
    held = await hold_for(
        rt, user, sale.session, seat_ids=[sale.front_seats[0], sale.back_seats[0]]
    )
    order = await order_for(rt, user, held, user_coupon_id=mine.user_coupon.id)
    # then the back seat's share of the promotion is 18.00 (56 × 180 / 560), its base 162.00,
    # and half of that, 81.00, comes off
    assert (order.subtotal_minor, order.promotion_discount_minor) == (56000, 5600)
    assert (order.coupon_discount_minor, order.total_minor) == (8100, 42300)
    await assert_order_adds_up(rt, order)
    # and on a hold without Back seats the coupon does not apply
    other = await make_user(rt, "front@example.com")
    theirs = await claimed(rt, other, mine.coupon)
    front_only = await hold_for(rt, other, sale.session, seat_ids=[sale.front_seats[1]])
    assert (
        await refused(order_for(rt, other, front_only, user_coupon_id=theirs.user_coupon.id))
        == "NOT_APPLICABLE"
    )


async def test_minimum_spend_is_checked_after_the_promotion(rt: Runtime):
    # given 满500减50 and a coupon needing 500.00 of spend, on a 540.00 hold
    sale = await on_sale(rt)
    promotion = await make_promotion(rt, sale.event.id, threshold="500", amount_off="50")
    user = await make_user(rt, "spend@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="30", min_spend="500"))
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)
    # then 490.00 after the promotion misses the minimum spend
    assert (
        await refused(order_for(rt, user, held, user_coupon_id=mine.user_coupon.id))
        == "MIN_SPEND_NOT_MET"
    )
    # and once the promotion ends, 540.00 reaches it
    await promotions.end_promotion(db=rt.db, viewer=OPERATOR, promotion_id=promotion.id)
    order = await order_for(rt, user, held, user_coupon_id=mine.user_coupon.id)
    assert (order.promotion_discount_minor, order.coupon_discount_minor) == (0, 3000)
    await assert_order_adds_up(rt, order)


async def test_checkout_refuses_coupons_that_do_not_apply_and_keeps_nothing(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "picky@example.com")
    stranger = await make_user(rt, "stranger@example.com")
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    # someone else's coupon
    theirs = await claimed(rt, stranger, await make_coupon(rt, name="Theirs"))
    assert (
        await refused(order_for(rt, user, held, user_coupon_id=theirs.user_coupon.id))
        == "NOT_FOUND"
    )
    # a coupon that ended after it was claimed
    ended = await claimed(rt, user, await make_coupon(rt, name="Ended"))
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=ended.coupon.id, status=CouponStatus.ENDED
    )
    assert (
        await refused(order_for(rt, user, held, user_coupon_id=ended.user_coupon.id)) == "EXPIRED"
    )
    # a coupon issued before its window opens
    early_coupon = await make_coupon(rt, name="Early", valid_from=utcnow() + timedelta(days=1))
    async with rt.db.write() as session:
        early = await grant(session, early_coupon, user.id, now=utcnow(), source=CouponSource.ISSUE)
    assert await refused(order_for(rt, user, held, user_coupon_id=early.id)) == "NOT_STARTED"
    # another event's coupon
    elsewhere = await on_sale(rt, tenant=sale.tenant)
    other_event = await claimed(
        rt, user, await make_coupon(rt, name="Elsewhere", event_id=elsewhere.event.id)
    )
    assert (
        await refused(order_for(rt, user, held, user_coupon_id=other_event.user_coupon.id))
        == "NOT_APPLICABLE"
    )
    # an unknown id
    assert await refused(order_for(rt, user, held, user_coupon_id="no-such-coupon")) == "NOT_FOUND"
    # then no order exists, the coupons are untouched, the hold can still be ordered
    async with rt.db.read() as session:
        assert (await session.exec(select(Order))).all() == []
        unused = (await session.exec(select(UserCoupon).where(UserCoupon.user_id == user.id))).all()
    assert {u.status for u in unused} == {UserCouponStatus.UNUSED}
    order = await order_for(rt, user, held)
    await assert_order_adds_up(rt, order)


async def expire(rt: Runtime, order: Order) -> None:
    async with rt.db.write() as session:
        await session.exec(
            update(Order)
            .where(col(Order.id) == order.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await orders.expire_due_orders(rt.order_deps) == 1


async def test_a_coupon_on_an_order_that_expires_is_usable_again(rt: Runtime):
    # given an unpaid order that used a coupon
    sale = await on_sale(rt)
    user = await make_user(rt, "expiry@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="25"))
    first = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1),
        user_coupon_id=mine.user_coupon.id,
    )
    await assert_order_adds_up(rt, first)
    # when its payment window passes
    await expire(rt, first)
    # then the coupon is the customer's again, and a new order can use it
    back = await user_coupon(rt, mine.user_coupon.id)
    assert (back.status, back.order_id, back.used_at) == (UserCouponStatus.UNUSED, None, None)
    second = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=2),
        user_coupon_id=mine.user_coupon.id,
    )
    assert second.coupon_discount_minor == 2500
    await assert_order_adds_up(rt, second)


async def test_a_coupon_on_a_cancelled_order_is_usable_again(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "cancel@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="25"))
    first = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1]),
        user_coupon_id=mine.user_coupon.id,
    )
    await assert_order_adds_up(rt, first)
    await orders.cancel_order(
        deps=rt.order_deps, viewer=await viewer_for(rt, user), order_id=first.id, reason=None
    )
    assert (await user_coupon(rt, mine.user_coupon.id)).status is UserCouponStatus.UNUSED
    second = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[1:2]),
        user_coupon_id=mine.user_coupon.id,
    )
    assert second.user_coupon_id == mine.user_coupon.id
    await assert_order_adds_up(rt, second)


async def test_two_orders_racing_for_one_coupon_one_wins(rt: Runtime):
    # given one coupon and two holds of the same customer
    sale = await on_sale(rt)
    user = await make_user(rt, "racer@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="10"))
    holds = [await hold_for(rt, user, sale.session, seat_ids=[seat]) for seat in sale.seat_ids[:2]]
    # when both become orders with the coupon at once
    results = await asyncio.gather(
        *(order_for(rt, user, held, user_coupon_id=mine.user_coupon.id) for held in holds),
        return_exceptions=True,
    )
    # then exactly one order has it, the other was refused with USED and left nothing behind
    won = [r for r in results if isinstance(r, Order)]
    lost = [r for r in results if isinstance(r, CouponUnavailable)]
    assert len(won) == 1
    assert [e.extensions()["reason"] for e in lost] == ["USED"]
    await assert_order_adds_up(rt, won[0])
    assert (await user_coupon(rt, mine.user_coupon.id)).order_id == won[0].id
    async with rt.db.read() as session:
        assert len((await session.exec(select(Order))).all()) == 1


async def test_available_coupons_are_what_checkout_charges_best_first(rt: Runtime):
    # given 满300减50 and a customer holding several coupons, on a 540.00 hold
    sale = await on_sale(rt)
    await make_promotion(rt, sale.event.id, threshold="300", amount_off="50")
    user = await make_user(rt, "wallet@example.com")
    fixed = await claimed(rt, user, await make_coupon(rt, name="20 off", value="20"))
    percent = await claimed(
        rt,
        user,
        await make_coupon(rt, name="10%", kind=CouponKind.PERCENT, value="10", max_discount="45"),
    )
    solo = await claimed(
        rt,
        user,
        await make_coupon(
            rt, name="12% alone", kind=CouponKind.PERCENT, value="12", stackable=False
        ),
    )
    await claimed(rt, user, await make_coupon(rt, name="Too dear", value="99", min_spend="900"))
    elsewhere = await on_sale(rt, tenant=sale.tenant)
    await claimed(rt, user, await make_coupon(rt, name="Other show", event_id=elsewhere.event.id))
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)
    # when the customer asks which coupons fit
    offers = await available_coupons(
        deps=rt.order_deps, viewer=customer(user), hold_token=held.token
    )
    # then the three that apply, best first: 10 % of 490 capped at 45 → 445.00; 12 % of 540
    # alone = 64.80 → 475.20; 20 off → 470.00
    assert [(o.user_coupon.id, o.discount_minor, o.order_total_minor) for o in offers] == [
        (percent.user_coupon.id, 4500, 44500),
        (fixed.user_coupon.id, 2000, 47000),
        (solo.user_coupon.id, 6480, 47520),
    ]
    # and checkout charges exactly that for each
    for offer in offers:
        key = f"k-{offer.user_coupon.id}"
        order = await order_for(rt, user, held, key=key, user_coupon_id=offer.user_coupon.id)
        assert (order.coupon_discount_minor, order.total_minor) == (
            offer.discount_minor,
            offer.order_total_minor,
        )
        assert order.promotion_discount_minor == offer.promotion_discount_minor
        await assert_order_adds_up(rt, order)
        await orders.cancel_order(
            deps=rt.order_deps, viewer=customer(user), order_id=order.id, reason=None
        )
        held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)


async def test_my_coupons_by_status(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "statuses@example.com")
    unused = await claimed(rt, user, await make_coupon(rt, name="Unused"))
    used = await claimed(rt, user, await make_coupon(rt, name="Used"))
    ended = await claimed(rt, user, await make_coupon(rt, name="Ended"))
    lapsing = await claimed(
        rt, user, await make_coupon(rt, name="Lapsed", valid_to=utcnow() + timedelta(hours=1))
    )
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=ended.coupon.id, status=CouponStatus.ENDED
    )
    async with rt.db.write() as session:
        await session.exec(
            update(Coupon)
            .where(col(Coupon.id) == lapsing.coupon.id)
            .values(valid_to=utcnow() - timedelta(seconds=1))
        )
    order = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1),
        user_coupon_id=used.user_coupon.id,
    )
    await assert_order_adds_up(rt, order)
    viewer = customer(user)

    async def ids(status: UserCouponStatus | None) -> set[str]:
        found = await my_coupons(db=rt.db, viewer=viewer, status=status)
        assert all(status is None or o.status is status for o in found)
        return {o.user_coupon.id for o in found}

    assert await ids(UserCouponStatus.UNUSED) == {unused.user_coupon.id}
    assert await ids(UserCouponStatus.USED) == {used.user_coupon.id}
    assert await ids(UserCouponStatus.EXPIRED) == {ended.user_coupon.id, lapsing.user_coupon.id}
    assert len(await ids(None)) == 4


async def late_payment(rt: Runtime, user: User, order: Order) -> payments.CallbackResult:
    """Pay ``order`` after it expired (the payment was started while it was unpaid)."""
    payment = await start_sandbox_payment(rt, user, order)
    await expire(rt, order)
    result, _ack = await payments.handle_callback(
        deps=rt.payment_deps,
        channel=PaymentChannel.SANDBOX,
        request=await sandbox_callback(rt, payment),
        remote_ip="127.0.0.1",
    )
    return result


async def test_a_late_payment_revives_the_order_with_its_coupon(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "revive@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="15"))
    order = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1]),
        user_coupon_id=mine.user_coupon.id,
    )
    result = await late_payment(rt, user, order)
    assert (result.verdict, result.reason) == (CallbackVerdict.APPLIED, "REVIVED")
    taken = await user_coupon(rt, mine.user_coupon.id)
    assert (taken.status, taken.order_id) == (UserCouponStatus.USED, order.id)
    await assert_order_adds_up(rt, order)


async def test_a_late_payment_cannot_revive_an_order_whose_coupon_went_elsewhere(rt: Runtime):
    # given an expired order whose coupon the customer then used on another order
    sale = await on_sale(rt)
    user = await make_user(rt, "reused@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="15"))
    first = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1]),
        user_coupon_id=mine.user_coupon.id,
    )
    await assert_order_adds_up(rt, first)
    payment = await start_sandbox_payment(rt, user, first)
    await expire(rt, first)
    second = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[1:2]),
        user_coupon_id=mine.user_coupon.id,
    )
    await assert_order_adds_up(rt, second)
    # when the first order's payment arrives late
    result, _ack = await payments.handle_callback(
        deps=rt.payment_deps,
        channel=PaymentChannel.SANDBOX,
        request=await sandbox_callback(rt, payment),
        remote_ip="127.0.0.1",
    )
    # then it is kept for a refund, the first order stays expired, the coupon stays with the second
    assert result.verdict is CallbackVerdict.REFUND_SCHEDULED
    async with rt.db.read() as session:
        stale = await session.get(Order, first.id)
        kept = await session.get(Payment, payment.id)
    assert stale is not None
    assert stale.status is OrderStatus.EXPIRED
    assert kept is not None
    assert kept.status is PaymentStatus.REFUND_PENDING
    assert (await user_coupon(rt, mine.user_coupon.id)).order_id == second.id


async def test_release_coupon_gives_a_paid_orders_coupon_back_for_a_full_refund(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "refund@example.com")
    mine = await claimed(rt, user, await make_coupon(rt, value="15"))
    order = await pay(
        rt,
        user,
        await order_for(
            rt,
            user,
            await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1]),
            user_coupon_id=mine.user_coupon.id,
        ),
    )
    assert order.status is OrderStatus.PAID
    await assert_order_adds_up(rt, order)
    async with rt.db.write() as session:
        assert await release_coupon(session, order) is True
        assert await release_coupon(session, order) is False  # once only
    assert (await user_coupon(rt, mine.user_coupon.id)).status is UserCouponStatus.UNUSED
