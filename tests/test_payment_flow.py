"""From hold to paid through GraphQL and the real callback endpoint; every forged, stale,
wrong or replayed callback changes nothing; late payments revive or are refunded."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import httpx
import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlmodel import col, select

from boxoffice.backends.seat_ledger import SeatLedger
from boxoffice.clock import utcnow
from boxoffice.models.events import TicketTier
from boxoffice.models.orders import (
    CallbackVerdict,
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentCallback,
    PaymentStatus,
)
from boxoffice.providers.payments import PaymentChannel
from boxoffice.providers.payments.sandbox import SandboxResult
from boxoffice.runtime import Runtime
from boxoffice.services import orders, payments
from tests.conftest import LiveServer
from tests.helpers import gql, make_user, token_for
from tests.order_factories import (
    hold_for,
    on_sale,
    order_for,
    sandbox_callback,
    start_sandbox_payment,
)
from tests.ws import graphql_ws

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }"
ORDER = """mutation($i: CreateOrderInput!) { createOrder(input: $i) {
  id orderNo status total { amount currency } items { seatId price { amount } } } }"""
PAY = """mutation($o: ID!) { startPayment(orderId: $o, channel: SANDBOX) {
  paymentNo channel amount { amount } payUrl params } }"""
UPDATES = "subscription($o: ID!) { orderUpdates(orderId: $o) { id status } }"


async def order_status(rt: Runtime, order_id: str) -> OrderStatus:
    async with rt.db.read() as session:
        order = await session.get(Order, order_id)
    assert order is not None
    return order.status


async def post_callback(
    client: httpx.AsyncClient, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await client.post("/payments/sandbox/notify", content=body, headers=headers)


async def test_hold_to_paid_with_live_order_updates(
    live_server: LiveServer, client: httpx.AsyncClient, rt: Runtime
):
    # given a fan who holds a seat and orders it
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    token = await token_for(rt, user)
    held = (
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "seatIds": sale.seat_ids[:1]}},
            token=token,
        )
    ).data
    order = (
        await gql(
            client,
            ORDER,
            {
                "i": {
                    "holdToken": held["createHold"]["token"],
                    "idempotencyKey": "k1",
                    "contact": {"name": "Ann", "phone": "13800138000"},
                }
            },
            token=token,
        )
    ).data["createOrder"]
    assert order["status"] == "PENDING_PAYMENT"
    assert order["total"] == {"amount": "380.00", "currency": "CNY"}
    # and watches it over a WebSocket
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        op = await ws.subscribe(UPDATES, {"o": order["id"]})
        assert (await ws.next_payload(op))["data"]["orderUpdates"]["status"] == "PENDING_PAYMENT"
        # when they pay in the sandbox (the sandbox company calls our notify endpoint over HTTP)
        intent = (await gql(client, PAY, {"o": order["id"]}, token=token)).data["startPayment"]
        assert intent["amount"] == {"amount": "380.00"}
        async with httpx.AsyncClient(base_url=live_server.http_url) as http:
            done = await http.post(
                f"/sandbox/payments/{intent['paymentNo']}/complete", json={"result": "SUCCESS"}
            )
        assert done.status_code == 200
        delivered = done.json()
        assert orjson.loads(delivered["ack"]) == {"code": "SUCCESS"}
        # then the subscriber sees PAID
        assert (await ws.next_payload(op))["data"]["orderUpdates"]["status"] == "PAID"
    assert await order_status(rt, order["id"]) == OrderStatus.PAID
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert snap.seats[sale.seat_ids[0]].value == "S"
    # and replaying the delivered callback is acknowledged and changes nothing
    replay = await post_callback(
        client, delivered["delivered"]["body"].encode(), delivered["delivered"]["headers"]
    )
    assert replay.status_code == 200
    async with rt.db.read() as session:
        verdicts = [c.verdict for c in (await session.exec(select(PaymentCallback))).all()]
        paid_events = (await session.exec(select(Payment))).all()
    assert verdicts.count(CallbackVerdict.APPLIED) == 1
    assert verdicts.count(CallbackVerdict.DUPLICATE) == 1
    assert [p.status for p in paid_events] == [PaymentStatus.SUCCEEDED]


async def test_bad_callbacks_change_nothing(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=2)
    )
    payment = await start_sandbox_payment(rt, user, order)
    genuine = await sandbox_callback(rt, payment)
    gateway = rt.payments.sandbox_gateway
    assert gateway is not None
    # forged signature
    forged = dict(genuine.headers)
    forged["x-sandbox-signature"] = forged["x-sandbox-signature"][:-4] + "AAA="
    # stale timestamp: signed ten minutes ago
    stale = gateway.sign(genuine.body, now=utcnow() - timedelta(minutes=10))
    # wrong amount, correctly signed
    cheap = gateway.callback_body(
        payment_no=payment.payment_no, result=SandboxResult.SUCCESS, amount_minor=1, currency="CNY"
    )
    cheap_signed = gateway.sign(cheap)
    # unknown payment, correctly signed
    unknown = gateway.callback_body(
        payment_no="PNOSUCHPAYMENT",
        result=SandboxResult.SUCCESS,
        amount_minor=36000,
        currency="CNY",
    )
    unknown_signed = gateway.sign(unknown)
    for body, headers in (
        (genuine.body, forged),
        (stale.body, stale.headers),
        (cheap_signed.body, cheap_signed.headers),
        (unknown_signed.body, unknown_signed.headers),
    ):
        answer = await post_callback(client, body, headers)
        assert answer.status_code >= 400, answer.text
    assert await order_status(rt, order.id) == OrderStatus.PENDING_PAYMENT
    async with rt.db.read() as session:
        audited = (await session.exec(select(PaymentCallback))).all()
        stored = await session.get(Payment, payment.id)
    assert [c.verdict for c in audited] == [CallbackVerdict.REJECTED] * 4
    assert {c.reason for c in audited} >= {
        "SIGNATURE_INVALID",
        "STALE_TIMESTAMP",
        "AMOUNT_MISMATCH",
        "UNKNOWN_PAYMENT",
    }
    assert stored is not None
    assert stored.status == PaymentStatus.PENDING
    # the genuine one then applies
    ok = await post_callback(client, genuine.body, dict(genuine.headers))
    assert ok.status_code == 200
    assert await order_status(rt, order.id) == OrderStatus.PAID


async def test_concurrent_duplicate_callbacks_apply_once(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:2])
    )
    payment = await start_sandbox_payment(rt, user, order)
    callback = await sandbox_callback(rt, payment)
    answers = await asyncio.gather(
        *(post_callback(client, callback.body, dict(callback.headers)) for _ in range(10))
    )
    assert all(a.status_code == 200 for a in answers)
    async with rt.db.read() as session:
        verdicts = [c.verdict for c in (await session.exec(select(PaymentCallback))).all()]
    assert verdicts.count(CallbackVerdict.APPLIED) == 1
    assert verdicts.count(CallbackVerdict.DUPLICATE) == 9


async def test_late_payment_revives_an_expired_order_if_the_seats_are_free(
    client: httpx.AsyncClient, rt: Runtime
):
    sale = await on_sale(rt)
    user = await make_user(rt, "slow@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1])
    )
    payment = await start_sandbox_payment(rt, user, order)
    await expire_now(rt, order.id)
    assert await order_status(rt, order.id) == OrderStatus.EXPIRED
    callback = await sandbox_callback(rt, payment)
    assert (await post_callback(client, callback.body, dict(callback.headers))).status_code == 200
    assert await order_status(rt, order.id) == OrderStatus.PAID
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert snap.seats[sale.seat_ids[0]].value == "S"


async def test_late_payment_for_a_resold_seat_is_kept_for_refund(
    client: httpx.AsyncClient, rt: Runtime
):
    sale = await on_sale(rt)
    user = await make_user(rt, "slow@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1])
    )
    payment = await start_sandbox_payment(rt, user, order)
    await expire_now(rt, order.id)
    other = await make_user(rt, "quick@example.com")
    await order_for(rt, other, await hold_for(rt, other, sale.session, seat_ids=sale.seat_ids[:1]))
    callback = await sandbox_callback(rt, payment)
    assert (await post_callback(client, callback.body, dict(callback.headers))).status_code == 200
    assert await order_status(rt, order.id) == OrderStatus.EXPIRED
    async with rt.db.read() as session:
        stored = await session.get(Payment, payment.id)
        verdict = (await session.exec(select(PaymentCallback))).one().verdict
    assert stored is not None
    assert stored.status == PaymentStatus.REFUND_PENDING
    assert verdict == CallbackVerdict.REFUND_SCHEDULED


async def expire_now(rt: Runtime, order_id: str) -> None:
    async with rt.db.write() as session:
        row = await session.get(Order, order_id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    assert await orders.expire_due_orders(rt.order_deps) == 1


async def test_an_expired_order_frees_its_seats_on_the_live_stream(
    live_server: LiveServer, rt: Runtime
):
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1])
    )
    query = (
        "subscription($s: ID!) { seatAvailability(sessionId: $s) { snapshot seats { id status } } }"
    )
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()
        op = await ws.subscribe(query, {"s": sale.session.id})
        first = (await ws.next_payload(op))["data"]["seatAvailability"]
        assert {s["id"]: s["status"] for s in first["seats"]}[sale.seat_ids[0]] == "HELD"
        await expire_now(rt, order.id)
        change = (await ws.next_payload(op))["data"]["seatAvailability"]
        assert change["seats"] == [{"id": sale.seat_ids[0], "status": "AVAILABLE"}]


@pytest.mark.parametrize("backend", ["embedded"])
async def test_payment_channels_that_are_not_configured_are_refused(
    client: httpx.AsyncClient, rt: Runtime
):
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    refused = await gql(
        client,
        "mutation($o: ID!) { startPayment(orderId: $o, channel: ALIPAY) { paymentNo } }",
        {"o": order.id},
        token=await token_for(rt, user),
    )
    assert refused.code == "BAD_USER_INPUT"
    assert refused.error["extensions"]["field"] == "channel"
    assert (await client.post("/payments/alipay/notify", content=b"x=1")).status_code == 404


async def test_callbacks_racing_the_expiry_sweeper_each_end_one_way(rt: Runtime):
    # given six unpaid orders, each for its own seat, whose payment window has just closed,
    # and each with a successful payment whose callback is on its way
    sale = await on_sale(rt)
    buyers = [await make_user(rt, f"racer{i}@example.com") for i in range(6)]
    placed = [
        await order_for(rt, u, await hold_for(rt, u, sale.session, seat_ids=[sale.seat_ids[i]]))
        for i, u in enumerate(buyers)
    ]
    paid = [await start_sandbox_payment(rt, u, o) for u, o in zip(buyers, placed, strict=True)]
    async with rt.db.write() as session:
        for order in placed:
            row = await session.get(Order, order.id)
            assert row is not None
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
    callbacks = [await sandbox_callback(rt, p) for p in paid]
    # when the sweeper expires them while the callbacks arrive
    await asyncio.gather(
        orders.expire_due_orders(rt.order_deps),
        *(
            payments.handle_callback(
                deps=rt.payment_deps,
                channel=PaymentChannel.SANDBOX,
                request=cb,
                remote_ip="127.0.0.1",
            )
            for cb in callbacks
        ),
    )
    # then every order was paid — before the sweeper reached it, or revived after it,
    # since nobody else took its seat — its payment applied once, nothing kept for refund
    async with rt.db.read() as session:
        ended = {o.id: o for o in (await session.exec(select(Order))).all()}
        stored = {p.order_id: p for p in (await session.exec(select(Payment))).all()}
        verdicts = [c.verdict for c in (await session.exec(select(PaymentCallback))).all()]
        live = (await session.exec(select(OrderItem).where(col(OrderItem.live)))).all()
        tier = await session.get(TicketTier, sale.seated.id)
    assert {o.status for o in ended.values()} == {OrderStatus.PAID}
    assert {p.status for p in stored.values()} == {PaymentStatus.SUCCEEDED}
    assert verdicts == [CallbackVerdict.APPLIED] * 6
    # and the database and the ledger agree on every seat
    assert sorted(i.seat_id for i in live) == sorted(sale.seat_ids[:6])
    assert tier is not None and tier.reserved == 6
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert [snap.seats[s].value for s in sale.seat_ids[:6]] == ["S"] * 6
    assert all(snap.seats[s].value == "A" for s in sale.seat_ids[6:])
    counts = await rt.backends.ledger.counts(sale.session.id)
    assert (counts[sale.seated.id].sold, counts[sale.seated.id].held) == (6, 0)


class LedgerLostOnRelease:
    """The runtime's ledger, except that ``release`` fails as if Redis went away just then."""

    def __init__(self, ledger: SeatLedger) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> object:
        return getattr(self._ledger, name)

    async def release(self, session_id: str, hold_id: str, *, now_ms: int) -> bool:
        raise RedisConnectionError("Connection reset by peer")


async def test_a_late_payment_revives_an_order_whose_expiry_never_reached_the_ledger(
    client: httpx.AsyncClient, rt: Runtime
):
    # given an order the sweeper expired in the database, but whose ledger hold it could not
    # release (the ledger failed right after the commit): the seat is still pinned by it
    sale = await on_sale(rt)
    user = await make_user(rt, "slow@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1])
    )
    payment = await start_sandbox_payment(rt, user, order)
    async with rt.db.write() as session:
        row = await session.get(Order, order.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.add(row)
    crashing = dataclasses.replace(rt.order_deps, ledger=LedgerLostOnRelease(rt.backends.ledger))  # type: ignore[arg-type]
    with pytest.raises(RedisConnectionError):
        await orders.expire_due_orders(crashing)
    assert await order_status(rt, order.id) == OrderStatus.EXPIRED
    # when its payment arrives
    callback = await sandbox_callback(rt, payment)
    assert (await post_callback(client, callback.body, dict(callback.headers))).status_code == 200
    # then the seat was the order's own: the order is revived and paid, the seat sold once
    assert await order_status(rt, order.id) == OrderStatus.PAID
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert snap.seats[sale.seat_ids[0]].value == "S"
    counts = await rt.backends.ledger.counts(sale.session.id)
    assert (counts[sale.seated.id].sold, counts[sale.seated.id].held) == (1, 0)
