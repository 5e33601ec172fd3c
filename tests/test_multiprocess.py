"""Several real server processes sharing PostgreSQL and Redis: no seat sold twice under a
stampede, availability crossing processes, and the ledger rebuilt after Redis lost it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from boxoffice.models.identity import User
from boxoffice.runtime import Runtime
from tests.helpers import make_user, token_for
from tests.order_factories import hold_for, on_sale, order_for, pay
from tests.processes import serving
from tests.ws import graphql_ws

pytestmark = pytest.mark.parametrize("backend", ["pg_redis"])

HOLD = """mutation($i: CreateHoldInput!) { createHold(input: $i) { token seats { id } } }"""
AVAILABILITY = (
    """query($s: ID!) { sessionAvailability(sessionId: $s) { version seats { id status } } }"""
)


async def make_users(rt: Runtime, n: int, prefix: str) -> list[User]:
    return [await make_user(rt, f"{prefix}{i}@example.com") for i in range(n)]


async def post(
    client: httpx.AsyncClient, url: str, query: str, variables: dict, token: str | None = None
) -> dict:  # type: ignore[type-arg]
    headers = {"authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        url + "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return response.json()  # type: ignore[no-any-return]


async def test_five_hundred_holds_for_one_hundred_seats_on_two_processes(
    rt: Runtime, tmp_path: Path
):
    # given 100 seats and 500 customers, and two server processes sharing PostgreSQL and Redis
    sale = await on_sale(rt, sections={"A": 10}, rows=10)
    assert len(sale.seat_ids) == 100
    users = await make_users(rt, 500, "crowd")
    tokens = [await token_for(rt, u) for u in users]
    rng = random.Random(5)
    async with (
        serving(rt.settings, tmp_path, 2) as servers,
        httpx.AsyncClient(timeout=30) as client,
    ):
        # when they all try at once: half pick two seats, half ask for the best one
        async def attempt(i: int) -> dict:  # type: ignore[type-arg]
            url = servers[i % 2].url
            if i % 2:
                wanted = {"sessionId": sale.session.id, "seatIds": rng.sample(sale.seat_ids, 2)}
            else:
                wanted = {"sessionId": sale.session.id, "tierId": sale.seated.id, "quantity": 1}
            return await post(client, url, HOLD, {"i": wanted}, tokens[i])

        results = await asyncio.gather(*(attempt(i) for i in range(500)))
        # then exactly the 100 seats are held, none twice, everyone else told why
        held = [s["id"] for r in results if r.get("data") for s in r["data"]["createHold"]["seats"]]
        codes = {r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")}
        assert len(held) == len(set(held)) == 100
        assert codes <= {"SOLD_OUT", "SEAT_UNAVAILABLE"}
        availability = await post(client, servers[1].url, AVAILABILITY, {"s": sale.session.id})
        statuses = [s["status"] for s in availability["data"]["sessionAvailability"]["seats"]]
        assert statuses.count("HELD") == 100


async def test_a_subscriber_on_one_process_sees_a_hold_made_on_another(rt: Runtime, tmp_path: Path):
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    token = await token_for(rt, user)
    query = "subscription($s: ID!) { seatAvailability(sessionId: $s) { version snapshot seats { id status } } }"
    async with (
        serving(rt.settings, tmp_path, 2) as (a, b),
        httpx.AsyncClient(timeout=10) as client,
        graphql_ws(b.ws_url) as ws,
    ):
        await ws.init()
        op = await ws.subscribe(query, {"s": sale.session.id})
        first = (await ws.next_payload(op))["data"]["seatAvailability"]
        hold = {"i": {"sessionId": sale.session.id, "seatIds": sale.seat_ids[:1]}}
        await post(client, a.url, HOLD, hold, token)
        # within a second (next_payload gives up after one)
        change = (await ws.next_payload(op, timeout=1.0))["data"]["seatAvailability"]
        assert change["seats"] == [{"id": sale.seat_ids[0], "status": "HELD"}]
        assert change["version"] > first["version"]


async def test_losing_redis_loses_holds_but_never_sales(rt: Runtime, tmp_path: Path):
    # given a paid seat, an unpaid order for another, and a mere hold on a third
    sale = await on_sale(rt)
    buyers = await make_users(rt, 3, "b")
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
    async with (
        serving(rt.settings, tmp_path, 2) as servers,
        httpx.AsyncClient(timeout=10) as client,
    ):
        # when Redis loses everything
        redis = Redis.from_url(rt.settings.redis_url or "")
        await redis.flushall()
        await redis.aclose()
        # then the next read rebuilds the ledger from the database: sold and unpaid seats are
        # still taken, the mere hold is gone
        availability = await post(client, servers[0].url, AVAILABILITY, {"s": sale.session.id})
        statuses = {
            s["id"]: s["status"] for s in availability["data"]["sessionAvailability"]["seats"]
        }
        assert [statuses[s] for s in sale.seat_ids[:3]] == ["SOLD", "HELD", "AVAILABLE"]
        # and nobody can take the sold or unpaid seats
        intruder = await make_user(rt, "intruder@example.com")
        token = await token_for(rt, intruder)
        for seat in sale.seat_ids[:2]:
            refused = await post(
                client,
                servers[1].url,
                HOLD,
                {"i": {"sessionId": sale.session.id, "seatIds": [seat]}},
                token,
            )
            assert refused["errors"][0]["extensions"]["code"] == "SEAT_UNAVAILABLE"
