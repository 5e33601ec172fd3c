"""The waitlist (候补): units that come back are offered to the people waiting before the
public ever sees them — from refunds, from unpaid orders that end, from offers that lapse."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import update
from sqlmodel import col, select

from boxoffice.backends.seat_ledger import SeatState
from boxoffice.clock import utcnow
from boxoffice.errors import (
    AlreadyExists,
    BadUserInput,
    HoldNotFound,
    NotFound,
    SeatUnavailable,
    SoldOut,
)
from boxoffice.ids import new_id
from boxoffice.jobs import CONSUMERS, JOBS, expire_waitlist_offers
from boxoffice.models.identity import User
from boxoffice.models.notifications import Notification
from boxoffice.models.orders import Order, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.waitlist import WaitlistEntry, WaitlistStatus
from boxoffice.runtime import Runtime
from boxoffice.services import inventory, orders, waitlist
from boxoffice.services.notifications import notification_consumer
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.waitlist_offers import (
    MAX_LAPSED_OFFERS,
    expire_offers,
    fulfilment_consumer,
    offer_token,
)
from tests.catalog_factories import make_event, make_session, make_tier, make_venue
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import OnSale, hold_for, on_sale, order_for, pay
from tests.refund_factories import entry, join, reload_order, request, review
from tests.ticket_factories import organizer, ticketed_order, tickets_of


async def available(rt: Runtime, sale: OnSale, tier_id: str) -> int:
    snap = await inventory.snapshot(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        session_id=sale.session.id,
    )
    return snap.available[tier_id]


async def seat_states(rt: Runtime, sale: OnSale) -> dict[str, SeatState]:
    snap = await inventory.snapshot(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        session_id=sale.session.id,
    )
    return snap.seats


async def order_with_offer(rt: Runtime, user: User, entry_id: str) -> Order:
    offered = await entry(rt, entry_id)
    token = offer_token(offered)
    assert token is not None
    return await orders.create_order(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, user),
        hold_token=token,
        idempotency_key=new_id(),
    )


async def lapse(rt: Runtime, entry_id: str) -> None:
    """Move an offer's deadline into the past (as if 30 minutes went by)."""
    async with rt.db.write() as session:
        await session.exec(
            update(WaitlistEntry)
            .where(col(WaitlistEntry.id) == entry_id)
            .values(offer_expires_at=utcnow() - timedelta(seconds=1))
        )


async def people(rt: Runtime, *names: str) -> list[User]:
    return [await make_user(rt, f"{name}@example.com") for name in names]


async def test_refunded_units_go_to_the_first_waiting_person_who_orders_and_pays(rt: Runtime):
    # given a general-admission tier of two, sold out, and three people waiting
    sale = await on_sale(rt, ga_capacity=2)
    buyer, first, second, third, public = await people(
        rt, "buyer", "first", "second", "third", "public"
    )
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, tickets = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=2)
    waiting = [
        await join(rt, first, sale.session.id, sale.ga.id, quantity=2),
        await join(rt, second, sale.session.id, sale.ga.id),
        await join(rt, third, sale.session.id, sale.ga.id),
    ]
    # when both tickets are refunded
    await review(rt, staff, await request(rt, buyer, order))
    # then the first person in line has an offer hold for them
    offered = await entry(rt, waiting[0].id)
    assert offered.status is WaitlistStatus.OFFERED
    assert offered.offer_expires_at is not None and offered.offer_expires_at > utcnow()
    hold = await inventory.get_hold(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        viewer=await viewer_for(rt, first),
        token=offer_token(offered) or "",
    )
    assert hold.quantity == 2 and hold.items[0].unit_price_minor == 18000
    assert [(await entry(rt, w.id)).status for w in waiting[1:]] == [WaitlistStatus.WAITING] * 2
    # and the public could not take them
    assert await available(rt, sale, sale.ga.id) == 0
    with pytest.raises(SoldOut):
        await hold_for(rt, public, sale.session, tier_id=sale.ga.id, quantity=1)
    # when the first person orders with the offer and pays
    bought = await pay(rt, first, await order_with_offer(rt, first, waiting[0].id))
    assert bought.status is OrderStatus.PAID and bought.total_minor == 36000
    assert "waitlist-fulfilment" in [c.name for c in CONSUMERS]
    await dispatch_once(rt, fulfilment_consumer())
    # then the offer is fulfilled; the others still wait, now first and second in line
    done = await entry(rt, waiting[0].id)
    assert (done.status, done.order_id) == (WaitlistStatus.FULFILLED, bought.id)
    mine, positions = await waitlist.my_waitlist(
        deps=rt.order_deps, viewer=await viewer_for(rt, third)
    )
    assert positions[mine[0].id] == 2
    assert len(tickets) == 2


async def test_an_offer_is_announced_without_its_token(rt: Runtime):
    # given a sold-out tier, a person waiting, and a refunded ticket offered to them
    sale = await on_sale(rt, ga_capacity=1)
    buyer, waiter = await people(rt, "buyer", "waiter")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    waiting = await join(rt, waiter, sale.session.id, sale.ga.id)
    await review(rt, staff, await request(rt, buyer, order))
    offered = await entry(rt, waiting.id)
    # when the notifications go out
    await dispatch_once(rt, notification_consumer())
    # then the waiting person is told (with the event and the deadline), the token is in no
    # event payload (webhooks carry them), only in the person's own myWaitlist
    async with rt.db.read() as session:
        told = (
            await session.exec(
                select(Notification).where(
                    Notification.user_id == waiter.id, Notification.topic == "waitlist.offered"
                )
            )
        ).all()
        [event] = (
            await session.exec(select(OutboxEvent).where(OutboxEvent.topic == "waitlist.offered"))
        ).all()
    assert told and "On Sale Show" in told[0].body
    token = offer_token(offered)
    assert token and token not in orjson.dumps(event.payload).decode()
    assert offered.offer_hold_id not in orjson.dumps(event.payload).decode()
    assert event.payload["resource"]["offerExpiresAt"] == offered.offer_expires_at.isoformat()


async def test_returned_seats_are_held_for_the_waitlist_never_available(rt: Runtime):
    # given a seated tier of two seats, sold out, and two people waiting for one seat each
    sale = await on_sale(rt, sections={"A": 2}, rows=1)
    buyer, first, second, public = await people(rt, "buyer", "first", "second", "public")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _tickets = await ticketed_order(rt, buyer, sale, seat_ids=sale.seat_ids)
    a = await join(rt, first, sale.session.id, sale.seated.id)
    b = await join(rt, second, sale.session.id, sale.seated.id)
    # when both seats are refunded
    await review(rt, staff, await request(rt, buyer, order))
    # then each of them is offered one of the seats, held, never available to the public
    offers = [await entry(rt, a.id), await entry(rt, b.id)]
    assert [o.status for o in offers] == [WaitlistStatus.OFFERED] * 2
    assert sorted(s for o in offers for s in o.offer_seat_ids) == sorted(sale.seat_ids)
    states = await seat_states(rt, sale)
    assert {states[s] for s in sale.seat_ids} == {SeatState.HELD}
    with pytest.raises(SeatUnavailable):
        await hold_for(rt, public, sale.session, seat_ids=[sale.seat_ids[0]])
    with pytest.raises(SoldOut):
        await hold_for(rt, public, sale.session, tier_id=sale.seated.id, quantity=1)


async def test_an_offer_left_to_expire_passes_to_the_next_person(rt: Runtime):
    # given a sold-out tier, two people waiting, and one refunded ticket offered to the first
    sale = await on_sale(rt, ga_capacity=1)
    buyer, first, second, public = await people(rt, "buyer", "first", "second", "public")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    a = await join(rt, first, sale.session.id, sale.ga.id)
    b = await join(rt, second, sale.session.id, sale.ga.id)
    await review(rt, staff, await request(rt, buyer, order))
    first_offer = await entry(rt, a.id)
    assert first_offer.status is WaitlistStatus.OFFERED
    # when the offer is left to expire and the job runs
    await lapse(rt, a.id)
    assert "waitlist-offers" in [job.name for job in JOBS]
    assert await expire_waitlist_offers(rt) == 1
    # then the second person has the unit; the first's token is worthless
    assert (await entry(rt, a.id)).status is WaitlistStatus.EXPIRED
    second_offer = await entry(rt, b.id)
    assert second_offer.status is WaitlistStatus.OFFERED
    with pytest.raises(HoldNotFound):
        await orders.create_order(
            deps=rt.order_deps,
            viewer=await viewer_for(rt, first),
            hold_token=offer_token(first_offer) or "",
            idempotency_key=new_id(),
        )
    assert await available(rt, sale, sale.ga.id) == 0
    with pytest.raises(SoldOut):
        await hold_for(rt, public, sale.session, tier_id=sale.ga.id, quantity=1)
    # and when that offer lapses too, with nobody left waiting, the unit goes to the public
    await lapse(rt, b.id)
    assert await expire_offers(rt.order_deps) == 1
    assert await available(rt, sale, sale.ga.id) == 1
    assert (await hold_for(rt, public, sale.session, tier_id=sale.ga.id, quantity=1)).quantity == 1


async def test_an_offer_with_an_unpaid_order_waits_for_that_order(rt: Runtime):
    # given an offer its person ordered with but has not paid yet, past its deadline
    sale = await on_sale(rt, ga_capacity=1)
    buyer, first, second = await people(rt, "buyer", "first", "second")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    a = await join(rt, first, sale.session.id, sale.ga.id)
    b = await join(rt, second, sale.session.id, sale.ga.id)
    await review(rt, staff, await request(rt, buyer, order))
    unpaid = await order_with_offer(rt, first, a.id)
    await lapse(rt, a.id)
    # then the job leaves it alone
    assert await expire_offers(rt.order_deps) == 0
    assert (await entry(rt, a.id)).status is WaitlistStatus.OFFERED
    assert (await entry(rt, b.id)).status is WaitlistStatus.WAITING
    # when that order is cancelled, the offer has lapsed and its unit goes to the next person
    await orders.cancel_order(
        deps=rt.order_deps, viewer=await viewer_for(rt, first), order_id=unpaid.id, reason=None
    )
    ended = await entry(rt, a.id)
    assert (ended.status, ended.order_id) == (WaitlistStatus.EXPIRED, unpaid.id)
    assert (await entry(rt, b.id)).status is WaitlistStatus.OFFERED
    assert await available(rt, sale, sale.ga.id) == 0


async def test_an_unpaid_order_that_ends_gives_its_units_to_the_waitlist(rt: Runtime):
    # given a tier of two taken by an unpaid order, and a person waiting for two
    sale = await on_sale(rt, ga_capacity=2)
    buyer, waiter, public = await people(rt, "buyer", "waiter", "public")
    unpaid = await order_for(
        rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=2)
    )
    waiting = await join(rt, waiter, sale.session.id, sale.ga.id, quantity=2)
    # when the order is cancelled
    await orders.cancel_order(
        deps=rt.order_deps, viewer=await viewer_for(rt, buyer), order_id=unpaid.id, reason=None
    )
    # then its units went straight to the waiting person's offer, never to the public
    assert (await entry(rt, waiting.id)).status is WaitlistStatus.OFFERED
    assert await available(rt, sale, sale.ga.id) == 0
    with pytest.raises(SoldOut):
        await hold_for(rt, public, sale.session, tier_id=sale.ga.id, quantity=1)
    bought = await pay(rt, waiter, await order_with_offer(rt, waiter, waiting.id))
    assert bought.status is OrderStatus.PAID


async def test_an_expired_unpaid_order_also_feeds_the_waitlist(rt: Runtime):
    sale = await on_sale(rt, ga_capacity=1)
    buyer, waiter = await people(rt, "buyer", "waiter")
    unpaid = await order_for(
        rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    waiting = await join(rt, waiter, sale.session.id, sale.ga.id)
    async with rt.db.write() as session:
        await session.exec(
            update(Order)
            .where(col(Order.id) == unpaid.id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await orders.expire_due_orders(rt.order_deps) == 1
    assert (await reload_order(rt, unpaid.id)).status is OrderStatus.EXPIRED
    assert (await entry(rt, waiting.id)).status is WaitlistStatus.OFFERED
    assert await available(rt, sale, sale.ga.id) == 0


async def test_the_first_entry_that_fits_is_served_by_priority_then_join_time(rt: Runtime):
    # given a sold-out tier of two and four people waiting: one for three, a late member
    sale = await on_sale(rt, ga_capacity=2)
    buyer, big, early, middle, member = await people(rt, "buyer", "big", "early", "mid", "member")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=2)
    too_big = await join(rt, big, sale.session.id, sale.ga.id, quantity=3)
    a = await join(rt, early, sale.session.id, sale.ga.id)
    b = await join(rt, middle, sale.session.id, sale.ga.id)
    vip = await join(rt, member, sale.session.id, sale.ga.id)
    moved, positions = await waitlist.set_priority(
        deps=rt.order_deps, viewer=staff, entry_id=vip.id, priority=10
    )
    assert positions[moved.id] == 1
    # when one ticket is refunded, then the other
    tickets = [t.id for t in await tickets_of(rt, order.id)]
    await review(rt, staff, await request(rt, buyer, order, [tickets[0]]))
    # then the member is served first (the one waiting for three does not fit)
    assert (await entry(rt, vip.id)).status is WaitlistStatus.OFFERED
    assert (await entry(rt, too_big.id)).status is WaitlistStatus.WAITING
    await review(rt, staff, await request(rt, buyer, order, [tickets[1]]))
    assert (await entry(rt, a.id)).status is WaitlistStatus.OFFERED
    assert (await entry(rt, b.id)).status is WaitlistStatus.WAITING


async def test_joining_needs_a_sold_out_tier_once_per_person(rt: Runtime):
    sale = await on_sale(rt, ga_capacity=2)
    buyer, waiter = await people(rt, "buyer", "waiter")
    # not sold out: hold instead
    with pytest.raises(BadUserInput) as open_tier:
        await join(rt, waiter, sale.session.id, sale.ga.id)
    assert open_tier.value.details["reason"] == "NOT_SOLD_OUT"
    await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=2)
    with pytest.raises(BadUserInput) as too_many:
        await join(rt, waiter, sale.session.id, sale.ga.id, quantity=99)
    assert too_many.value.details["field"] == "quantity"
    # once per person per tier, even when racing
    results = await asyncio.gather(
        *(join(rt, waiter, sale.session.id, sale.ga.id) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, WaitlistEntry) for r in results) == 1
    assert sum(isinstance(r, AlreadyExists) for r in results) == 4
    # and after leaving, again
    joined = next(r for r in results if isinstance(r, WaitlistEntry))
    viewer = await viewer_for(rt, waiter)
    assert await waitlist.leave_waitlist(deps=rt.order_deps, viewer=viewer, entry_id=joined.id)
    assert not await waitlist.leave_waitlist(deps=rt.order_deps, viewer=viewer, entry_id=joined.id)
    again = await join(rt, waiter, sale.session.id, sale.ga.id)
    assert again.status is WaitlistStatus.WAITING
    mine, _ = await waitlist.my_waitlist(deps=rt.order_deps, viewer=viewer)
    assert [m.id for m in mine] == [again.id]


async def test_a_draft_events_session_has_no_waitlist_for_customers(rt: Runtime):
    # given a session of an event still in draft
    tenant = await make_tenant(rt, "Draft club")
    event = await make_event(rt, tenant, await make_venue(rt, tenant))
    session = await make_session(rt, event)
    tier = await make_tier(rt, session, capacity=5)
    (waiter,) = await people(rt, "draft-waiter")
    # when a customer asks to wait for it, then it does not exist (as an unknown id)
    with pytest.raises(NotFound) as missing:
        await join(rt, waiter, session.id, tier.id)
    assert missing.value.details["field"] == "sessionId"


async def test_people_who_let_offers_lapse_are_paused(rt: Runtime):
    # given someone who let the maximum number of offers lapse lately
    sale = await on_sale(rt, ga_capacity=1)
    buyer, lapser, patient = await people(rt, "buyer", "lapser", "patient")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    waiting = await join(rt, lapser, sale.session.id, sale.ga.id)
    later = await join(rt, patient, sale.session.id, sale.ga.id)
    async with rt.db.write() as session:
        for _ in range(MAX_LAPSED_OFFERS):
            session.add(
                WaitlistEntry(
                    tenant_id=sale.tenant.id,
                    event_id=sale.event.id,
                    session_id=sale.session.id,
                    tier_id=sale.seated.id,
                    user_id=lapser.id,
                    quantity=1,
                    status=WaitlistStatus.EXPIRED,
                    offered_at=utcnow() - timedelta(days=1),
                )
            )
    # when a unit comes back
    await review(rt, staff, await request(rt, buyer, order))
    # then the lapser is skipped, and cannot join another waitlist for now
    assert (await entry(rt, waiting.id)).status is WaitlistStatus.WAITING
    assert (await entry(rt, later.id)).status is WaitlistStatus.OFFERED
    with pytest.raises(BadUserInput) as paused:
        await join(rt, lapser, sale.session.id, sale.seated.id)
    assert paused.value.details["reason"] == "WAITLIST_PAUSED"


async def test_leaving_with_an_offer_passes_it_on(rt: Runtime):
    sale = await on_sale(rt, ga_capacity=1)
    buyer, first, second = await people(rt, "buyer", "first", "second")
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    a = await join(rt, first, sale.session.id, sale.ga.id)
    b = await join(rt, second, sale.session.id, sale.ga.id)
    await review(rt, staff, await request(rt, buyer, order))
    assert await waitlist.leave_waitlist(
        deps=rt.order_deps, viewer=await viewer_for(rt, first), entry_id=a.id
    )
    assert (await entry(rt, a.id)).status is WaitlistStatus.LEFT
    assert (await entry(rt, b.id)).status is WaitlistStatus.OFFERED
    assert await available(rt, sale, sale.ga.id) == 0
