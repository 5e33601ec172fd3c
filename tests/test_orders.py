"""Orders from holds: idempotent checkout, cancel and expiry give everything back, the
database refuses to sell a seat twice, state transitions are a fixed table."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.errors import (
    BadUserInput,
    BoxofficeError,
    HoldNotFound,
    IdempotencyConflict,
    OrderStateInvalid,
    SeatUnavailable,
)
from boxoffice.models.events import TicketTier
from boxoffice.models.orders import IdempotencyKey, ItemStatus, Order, OrderItem, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services import order_states, orders
from tests.helpers import make_user, viewer_for
from tests.order_factories import hold_for, on_sale, order_for, pay


async def reserved(rt: Runtime, tier_id: str) -> int:
    async with rt.db.read() as session:
        tier = await session.get(TicketTier, tier_id)
    assert tier is not None
    return tier.reserved


async def test_order_from_a_hold_takes_database_capacity_and_owns_the_hold(rt: Runtime):
    # given a customer holding two seats and three general-admission tickets... in two holds
    sale = await on_sale(rt)
    user = await make_user(rt, "buyer@example.com")
    seats = await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:2])
    # when the seat hold becomes an order
    order = await order_for(rt, user, seats, contact_name="王小明", contact_phone="13800138000")
    # then it is unpaid with the hold's price snapshot, and the database counts it
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert order.subtotal_minor == order.total_minor == 2 * 38000
    assert order.contact_phone == "+8613800138000"
    assert order.expires_at is not None
    assert order.expires_at > utcnow()
    assert await reserved(rt, sale.seated.id) == 2
    async with rt.db.read() as session:
        items = (await session.exec(select(OrderItem).where(OrderItem.order_id == order.id))).all()
        topics = [e.topic for e in (await session.exec(select(OutboxEvent))).all()]
    assert sorted(i.seat_id for i in items) == sorted(sale.seat_ids[:2])
    assert all(i.live for i in items)
    assert "order.created" in topics
    # and the hold now belongs to the order: it cannot be released or ordered again
    with pytest.raises(BadUserInput):
        await order_for(rt, user, seats)


async def test_placing_an_order_holds_one_connection_at_a_time(rt: Runtime):
    # given a hold, and session rules the cache has to read again (it expires every few s)
    sale = await on_sale(rt)
    user = await make_user(rt, "rush@example.com")
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    rt.session_rules.clear()
    # when the order is placed, counting the connections checked out at once
    out, most = [0], [0]

    def checkout(*_: object) -> None:
        out[0] += 1
        most[0] = max(most[0], out[0])

    def checkin(*_: object) -> None:
        out[0] -= 1

    pools = {
        id(e.sync_engine.pool): e.sync_engine.pool for e in (rt.db.write_engine, rt.db.read_engine)
    }
    for pool in pools.values():
        event.listen(pool, "checkout", checkout)
        event.listen(pool, "checkin", checkin)
    try:
        order = await order_for(rt, user, held)
    finally:
        for pool in pools.values():
            event.remove(pool, "checkout", checkout)
            event.remove(pool, "checkin", checkin)
    # then it never asked for a connection while holding one: in a rush of orders that hold
    # every connection of the pool, such a request waits for a connection only the others
    # could give back, and they all wait for the pool's timeout
    assert order.status == OrderStatus.PENDING_PAYMENT
    assert most[0] == 1


async def test_same_key_same_request_returns_the_first_order(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "again@example.com")
    held = await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=2)
    first = await order_for(rt, user, held, key="key-1")
    second = await order_for(rt, user, held, key="key-1")
    assert second.id == first.id
    with pytest.raises(IdempotencyConflict):
        await order_for(rt, user, held, key="key-1", contact_name="someone else")


async def test_same_key_replays_the_first_error(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "err@example.com")
    viewer = await viewer_for(rt, user)
    unknown = f"{sale.session.id}.no-such-hold"
    with pytest.raises(HoldNotFound):
        await orders.create_order(
            deps=rt.order_deps, viewer=viewer, hold_token=unknown, idempotency_key="k"
        )
    # the same key and request answers the same error from the stored outcome
    async with rt.db.read() as session:
        stored = (await session.exec(select(IdempotencyKey))).one()
    assert stored.error is not None
    assert stored.error["extensions"]["code"] == "HOLD_NOT_FOUND"
    with pytest.raises(BoxofficeError) as replayed:
        await orders.create_order(
            deps=rt.order_deps, viewer=viewer, hold_token=unknown, idempotency_key="k"
        )
    assert replayed.value.extensions()["code"] == "HOLD_NOT_FOUND"
    # and another user's identical key is theirs alone
    other = await make_user(rt, "err2@example.com")
    with pytest.raises(HoldNotFound):
        await orders.create_order(
            deps=rt.order_deps,
            viewer=await viewer_for(rt, other),
            hold_token=unknown,
            idempotency_key="k",
        )


async def test_fifty_concurrent_requests_with_one_key_make_one_order(rt: Runtime):
    # given a hold and fifty racing checkouts with the same key
    sale = await on_sale(rt)
    user = await make_user(rt, "race@example.com")
    held = await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:3])

    async def attempt() -> str:
        try:
            return (await order_for(rt, user, held, key="same-key")).id
        except IdempotencyConflict:
            return "conflict"

    results = await asyncio.gather(*(attempt() for _ in range(50)))
    # then there is exactly one order, every answer is it or a conflict
    order_ids = {r for r in results if r != "conflict"}
    assert len(order_ids) == 1
    async with rt.db.read() as session:
        assert len((await session.exec(select(Order))).all()) == 1
    assert await reserved(rt, sale.seated.id) == 3


async def test_cancel_gives_seats_capacity_and_ledger_back(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "cancel@example.com")
    held = await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:2])
    order = await order_for(rt, user, held)
    cancelled = await orders.cancel_order(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, user),
        order_id=order.id,
        reason="changed my mind",
    )
    assert cancelled.status == OrderStatus.CANCELLED
    assert await reserved(rt, sale.seated.id) == 0
    async with rt.db.read() as session:
        items = (await session.exec(select(OrderItem).where(OrderItem.order_id == order.id))).all()
    assert all(not i.live and i.status == ItemStatus.RELEASED for i in items)
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert all(snap.seats[s].value == "A" for s in sale.seat_ids[:2])
    # and the seats can be sold again
    other = await make_user(rt, "next@example.com")
    again = await order_for(
        rt, other, await hold_for(rt, other, sale.session, seat_ids=sale.seat_ids[:2])
    )
    assert again.status == OrderStatus.PENDING_PAYMENT
    # while cancelling twice, or cancelling a paid order, is refused
    with pytest.raises(OrderStateInvalid):
        await orders.cancel_order(
            deps=rt.order_deps, viewer=await viewer_for(rt, user), order_id=order.id, reason=None
        )
    paid = await pay(rt, other, again)
    assert paid.status == OrderStatus.PAID
    with pytest.raises(OrderStateInvalid):
        await orders.cancel_order(
            deps=rt.order_deps, viewer=await viewer_for(rt, other), order_id=paid.id, reason=None
        )


@pytest.mark.settings(order_ttl_seconds=10)
async def test_unpaid_orders_expire_and_give_everything_back(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "late@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=4)
    )
    assert await orders.expire_due_orders(rt.order_deps) == 0
    async with rt.db.write() as session:  # the payment window has passed
        row = await session.get(Order, order.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    assert await orders.expire_due_orders(rt.order_deps) == 1
    async with rt.db.read() as session:
        expired = await session.get(Order, order.id)
    assert expired is not None
    assert expired.status == OrderStatus.EXPIRED
    assert await reserved(rt, sale.ga.id) == 0
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert snap.available[sale.ga.id] == 10


async def test_the_database_refuses_a_seat_the_ledger_lost(rt: Runtime):
    # given a sold seat, and a ledger that lost everything (Redis flushed, not rebuilt yet)
    sale = await on_sale(rt)
    first = await make_user(rt, "first@example.com")
    await pay(
        rt,
        first,
        await order_for(
            rt, first, await hold_for(rt, first, sale.session, seat_ids=sale.seat_ids[:1])
        ),
    )
    await rt.backends.ledger.forget(sale.session.id)
    rt.session_rules.clear()
    # when the ledger is loaded again from the database, the seat is still sold
    second = await make_user(rt, "second@example.com")
    with pytest.raises(SeatUnavailable):
        await hold_for(rt, second, sale.session, seat_ids=sale.seat_ids[:1])


async def test_state_machine_is_one_table():
    assert order_states.allowed(OrderStatus.PENDING_PAYMENT, OrderStatus.PAID)
    assert order_states.allowed(OrderStatus.EXPIRED, OrderStatus.PAID)  # a late payment revives
    assert not order_states.allowed(OrderStatus.PAID, OrderStatus.CANCELLED)
    assert not order_states.allowed(OrderStatus.REFUNDED, OrderStatus.PAID)
    with pytest.raises(OrderStateInvalid) as refused:
        order_states.check("o1", OrderStatus.COMPLETED, OrderStatus.REFUNDING)
    assert refused.value.details == {"current": "COMPLETED", "target": "REFUNDING"}
    every = set(OrderStatus)
    assert set(order_states.TRANSITIONS) == every
