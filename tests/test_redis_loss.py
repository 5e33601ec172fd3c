"""Redis lost mid-sale — flushed, or killed and restarted empty — in one process and across
real server processes: holds may be lost, seats are never sold twice, the seat ledger is
rebuilt from the database, and ``seatAvailability`` subscribers keep receiving updates."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import event
from sqlmodel import col, select

from boxoffice.app import create_app
from boxoffice.backends.codes.memory import MemoryCodeStore
from boxoffice.clock import utcnow
from boxoffice.models.identity import Role, User
from boxoffice.models.orders import Order, OrderItem, OrderStatus
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.services import inventory, orders
from tests.conftest import LiveServer, _clean_database, running, settings_for
from tests.helpers import gql, login, make_user, token_for, viewer_for
from tests.order_factories import OnSale, hold_for, on_sale, order_for, pay
from tests.processes import serving
from tests.services import PostgresDatabase, RedisServer
from tests.ws import GraphQLWebSocket, graphql_ws

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token seats { id } } }"
ORDER = "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id status } }"
ME = "query { me { email } }"
SEATS = """subscription($s: ID!) { seatAvailability(sessionId: $s) {
  version snapshot seats { id status } } }"""


@dataclass
class Stack:
    rt: Runtime
    redis: RedisServer
    server: LiveServer
    client: httpx.AsyncClient


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of this test alone: it is flushed and killed here."""
    server = RedisServer()
    await server.start()
    try:
        if server.process is None:
            pytest.skip("needs a private redis-server (BOXOFFICE_TEST_REDIS_URL is set)")
        yield server
    finally:
        server.stop()


@pytest.fixture
async def stack(
    pg_database: PostgresDatabase, private_redis: RedisServer, tmp_path: Path
) -> AsyncIterator[Stack]:
    settings = settings_for(tmp_path, database_url=pg_database.url, redis_url=private_redis.url)
    rt = await open_runtime(settings)
    await _clean_database(rt)
    app = create_app(runtime=rt)
    try:
        async with running(app):
            server = LiveServer(app)
            await server.start()
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield Stack(rt, private_redis, server, client)
            await server.stop()
    finally:
        await rt.close()


async def flushall(url: str) -> None:
    redis = Redis.from_url(url)
    try:
        await redis.flushall()
    finally:
        await redis.aclose()


class SeatStream:
    """A ``seatAvailability`` subscriber that keeps the seat states it was told."""

    def __init__(self, ws: GraphQLWebSocket, op: str) -> None:
        self.ws, self.op = ws, op
        self.seats: dict[str, str] = {}
        self.version = 0
        self.snapshots = 0

    async def next(self, timeout: float) -> None:
        update = (await self.ws.next_payload(self.op, timeout=timeout))["data"]["seatAvailability"]
        assert int(update["version"]) > self.version, ("versions only ever increase", update)
        self.version = int(update["version"])
        if update["snapshot"]:
            self.snapshots += 1
            self.seats = {}
        self.seats.update({s["id"]: s["status"] for s in update["seats"]})

    async def until(self, wanted: dict[str, str], timeout: float = 20.0) -> None:
        """Read updates until the seats in ``wanted`` are in those states."""
        deadline = time.monotonic() + timeout
        while any(self.seats.get(seat) != status for seat, status in wanted.items()):
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {wanted}; last known {self.seats}"
            await self.next(left)


async def watch(ws: GraphQLWebSocket, session_id: str) -> SeatStream:
    await ws.init()
    stream = SeatStream(ws, await ws.subscribe(SEATS, {"s": session_id}))
    await stream.next(10)
    return stream


async def mid_sale(rt: Runtime, sale: OnSale) -> list[User]:
    """Seat 0 paid, seat 1 ordered and unpaid, seat 2 merely held; returns their buyers."""
    buyers = [await make_user(rt, f"buyer{i}@example.com") for i in range(3)]
    await pay(
        rt,
        buyers[0],
        await order_for(
            rt, buyers[0], await hold_for(rt, buyers[0], sale.session, seat_ids=sale.seat_ids[:1])
        ),
    )
    await order_for(
        rt, buyers[1], await hold_for(rt, buyers[1], sale.session, seat_ids=sale.seat_ids[1:2])
    )
    await hold_for(rt, buyers[2], sale.session, seat_ids=sale.seat_ids[2:3])
    return buyers


async def stampede(
    urls: list[str], tokens: list[str], session_id: str, seats: list[str]
) -> list[dict[str, Any]]:
    """Everyone tries to hold one of ``seats`` at once, spread over ``urls``."""
    rng = random.Random(7)
    async with httpx.AsyncClient(timeout=30) as http:

        async def attempt(i: int) -> dict[str, Any]:
            response = await http.post(
                urls[i % len(urls)] + "/graphql",
                json={
                    "query": HOLD,
                    "variables": {"i": {"sessionId": session_id, "seatIds": [rng.choice(seats)]}},
                },
                headers={"authorization": f"Bearer {tokens[i]}"},
            )
            body: dict[str, Any] = response.json()
            return body

        return await asyncio.gather(*(attempt(i) for i in range(len(tokens))))


def held_seats(results: list[dict[str, Any]]) -> list[str]:
    return [s["id"] for r in results if r.get("data") for s in r["data"]["createHold"]["seats"]]


def refusals(results: list[dict[str, Any]]) -> set[str]:
    return {r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")}


async def live_seats(rt: Runtime, session_id: str) -> list[str]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(OrderItem.seat_id).where(
                OrderItem.session_id == session_id, col(OrderItem.live).is_(True)
            )
        )
        return [seat for seat in rows.all() if seat]


async def test_a_flush_loses_holds_never_sales_and_subscribers_catch_up(stack: Stack):
    # given a sale under way and a live seat map watching it
    rt, sale = stack.rt, await on_sale(stack.rt)
    buyers = await mid_sale(rt, sale)
    s0, s1, s2, s3 = sale.seat_ids[:4]
    async with graphql_ws(stack.server.ws_url) as ws:
        stream = await watch(ws, sale.session.id)
        assert [stream.seats[s] for s in (s0, s1, s2)] == ["SOLD", "HELD", "HELD"]
        # when Redis loses everything, and nobody touches the session afterwards
        await flushall(stack.redis.url)
        # then the map learns the truth on its own: the sale and the order stand, the mere
        # hold is gone
        await stream.until({s0: "SOLD", s1: "HELD", s2: "AVAILABLE"})
        # and a crowd racing for seats 0-3 gets each free seat once and the taken ones never
        crowd = [await make_user(rt, f"crowd{i}@example.com") for i in range(24)]
        tokens = [await token_for(rt, u) for u in crowd]
        results = await stampede([stack.server.http_url], tokens, sale.session.id, [s0, s1, s2, s3])
        assert sorted(held_seats(results)) == sorted([s2, s3])
        assert refusals(results) == {"SEAT_UNAVAILABLE"}
        await stream.until({s2: "HELD", s3: "HELD"})
    # and the lost hold's owner is told so when ordering with it
    lost = await gql(
        stack.client,
        ORDER,
        {"i": {"holdToken": f"{sale.session.id}.gone", "idempotencyKey": "k"}},
        token=await token_for(rt, buyers[2]),
    )
    assert lost.code == "HOLD_NOT_FOUND"
    assert sorted(await live_seats(rt, sale.session.id)) == sorted([s0, s1])


async def test_a_redis_restart_mid_sale_keeps_the_sale_and_the_stream_going(stack: Stack):
    # given a sale under way and a live seat map watching it
    rt, sale = stack.rt, await on_sale(stack.rt)
    buyers = await mid_sale(rt, sale)
    s0, s1, s2, s3 = sale.seat_ids[:4]
    async with graphql_ws(stack.server.ws_url) as ws:
        stream = await watch(ws, sale.session.id)
        # when Redis is killed and comes back empty
        await stack.redis.restart()
        # then the subscriber is sent the state rebuilt from the database
        await stream.until({s0: "SOLD", s1: "HELD", s2: "AVAILABLE"})
        # and keeps receiving changes made after the restart
        newcomer = await make_user(rt, "newcomer@example.com")
        await hold_for(rt, newcomer, sale.session, seat_ids=[s3])
        await stream.until({s3: "HELD"})
        # and the unpaid order can still be paid: its seat becomes SOLD, once
        async with rt.db.read() as session:
            pending = (await session.exec(select(OrderItem).where(OrderItem.seat_id == s1))).one()
        async with rt.db.read() as session:
            order = await session.get(Order, pending.order_id)
        assert order is not None
        await pay(rt, buyers[1], order)
        await stream.until({s1: "SOLD"})
    assert sorted(await live_seats(rt, sale.session.id)) == sorted([s0, s1])


async def test_a_redis_restart_under_two_server_processes(
    pg_database: PostgresDatabase, private_redis: RedisServer, tmp_path: Path
):
    # given two server processes sharing PostgreSQL and a Redis that is about to die, a sale
    # under way, and a seat map watching it through the second process
    settings = settings_for(tmp_path, database_url=pg_database.url, redis_url=private_redis.url)
    rt = await open_runtime(settings)
    try:
        await _clean_database(rt)
        sale = await on_sale(rt)
        await mid_sale(rt, sale)
        s0, s1, s2, s3, s4 = sale.seat_ids[:5]
        crowd = [await make_user(rt, f"crowd{i}@example.com") for i in range(30)]
        tokens = [await token_for(rt, u) for u in crowd]
        async with serving(settings, tmp_path, 2) as (a, b), graphql_ws(b.ws_url) as ws:
            stream = await watch(ws, sale.session.id)
            await stream.until({s0: "SOLD", s1: "HELD", s2: "HELD"})
            # when Redis is killed and restarted empty
            await private_redis.restart()
            # then the watcher on the second process gets the rebuilt state
            await stream.until({s0: "SOLD", s1: "HELD", s2: "AVAILABLE"})
            # and a crowd hitting both processes gets each free seat once, the taken never
            results = await stampede([a.url, b.url], tokens, sale.session.id, [s0, s1, s2, s3, s4])
            assert sorted(held_seats(results)) == sorted([s2, s3, s4])
            assert refusals(results) == {"SEAT_UNAVAILABLE"}
            # and the watcher sees the holds made through the first process
            await stream.until({s2: "HELD", s3: "HELD", s4: "HELD"})
        assert sorted(await live_seats(rt, sale.session.id)) == sorted([s0, s1])
    finally:
        await rt.close()


async def lose_short_lived_state(rt: Runtime) -> None:
    """Redis flushed; in the embedded configuration, the process restarted (its in-memory
    store starts empty)."""
    if rt.backends.redis is not None:
        await rt.backends.redis.flushall()
    else:
        rt.backends.codes = MemoryCodeStore()


async def test_revoked_sign_ins_stay_revoked_when_the_store_forgets(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a frozen customer and one who logged out, both with unexpired access tokens
    frozen = await make_user(rt, "frozen@example.com")
    await make_user(rt, "gone@example.com")
    await make_user(rt, "kept@example.com")
    operator = await make_user(rt, "op@example.com", Role.OPERATOR)
    cold = await login(client, "frozen@example.com")
    left = await login(client, "gone@example.com")
    kept = await login(client, "kept@example.com")
    await gql(
        client,
        "mutation($u: ID!) { freezeUser(userId: $u) { id } }",
        {"u": frozen.id},
        token=await token_for(rt, operator),
    )
    await gql(
        client, "mutation($t: String!) { logout(refreshToken: $t) }", {"t": left["refreshToken"]}
    )
    # when the store that held their revocation markers loses everything
    await lose_short_lived_state(rt)
    # then their tokens are still refused (from the database), and others still work
    assert (await gql(client, ME, token=cold["accessToken"])).code == "ACCOUNT_FROZEN"
    assert (await gql(client, ME, token=left["accessToken"])).code == "UNAUTHENTICATED"
    assert (await gql(client, ME, token=kept["accessToken"])).data["me"]["email"]


async def test_after_a_loss_a_sign_in_is_checked_in_the_database_once_and_can_still_be_ended(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a signed-in customer whose token predates the store's loss
    await make_user(rt, "once@example.com")
    signed_in = await login(client, "once@example.com")
    await lose_short_lived_state(rt)
    engine = rt.db.read_engine.sync_engine
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        # when the token is used three times
        for _ in range(3):
            assert (await gql(client, ME, token=signed_in["accessToken"])).data["me"]["email"]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    # then the database was asked about its refresh-token family once, not per request
    assert sum("refresh_tokens" in s for s in statements) == 1, statements
    # and ending the sign-in afterwards still refuses the token at once
    await gql(
        client,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        {"t": signed_in["refreshToken"]},
    )
    assert (await gql(client, ME, token=signed_in["accessToken"])).code == "UNAUTHENTICATED"


@pytest.mark.parametrize("backend", ["pg_redis"])
async def test_orders_end_cleanly_while_the_ledger_is_lost(rt: Runtime):
    # given two unpaid orders, one past its payment window
    sale = await on_sale(rt)
    buyers = [await make_user(rt, f"b{i}@example.com") for i in range(2)]
    placed = [
        await order_for(rt, u, await hold_for(rt, u, sale.session, seat_ids=[s]))
        for u, s in zip(buyers, sale.seat_ids[:2], strict=True)
    ]
    async with rt.db.write() as session:
        due = await session.get(Order, placed[1].id)
        assert due is not None
        due.expires_at = utcnow() - timedelta(seconds=1)
        session.add(due)
    # when Redis loses the ledger, and then one is cancelled and the other expires
    await flushall(rt.settings.redis_url or "")
    cancelled = await orders.cancel_order(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, buyers[0]),
        order_id=placed[0].id,
        reason=None,
    )
    expired = await orders.expire_due_orders(rt.order_deps)
    # then both end (nothing to release in a ledger that is gone), and the rebuilt ledger
    # has both seats free
    assert cancelled.status is OrderStatus.CANCELLED and expired == 1
    snap = await inventory.snapshot(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        session_id=sale.session.id,
    )
    assert [snap.seats[s].value for s in sale.seat_ids[:2]] == ["A", "A"]
