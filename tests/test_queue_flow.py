"""The waiting room end to end: 2,000 customers join through GraphQL, the ticker admits them
at 200 per second on a clock the test moves, and 50 of them watch their position over real
WebSockets."""

from __future__ import annotations

import asyncio
import math
import time
from contextlib import AsyncExitStack
from typing import Any

import httpx
from starlette.applications import Starlette

from boxoffice.backends.waiting_room import QueueState
from boxoffice.runtime import Runtime
from tests.conftest import LiveServer
from tests.helpers import gql, until
from tests.queue_factories import JOIN, POSITION, Clock, catalog_ticker, customers, queue_sale
from tests.ws import graphql_ws

JOINERS = 2000
RATE = 200
WATCHERS = 50
CONCURRENCY = 32  # requests in flight at once
ADDRESSES = 20  # client IPs (each stays under the per-IP join limit)


async def clients(app: Starlette, stack: AsyncExitStack) -> list[httpx.AsyncClient]:
    return [
        await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=(f"198.51.100.{i + 1}", 40000)),
                base_url="http://testserver",
            )
        )
        for i in range(ADDRESSES)
    ]


async def watch(server: LiveServer, token: str, event_id: str, out: list[dict[str, Any]]) -> None:
    """Follow ``queuePosition`` over a WebSocket until the server completes it."""
    async with graphql_ws(server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        op = await ws.subscribe(POSITION, {"e": event_id})
        while True:
            message = await ws.receive(timeout=60)
            if message.get("type") == "ping":
                await ws.send({"type": "pong"})
                continue
            assert message.get("id") == op, message
            if message["type"] == "complete":
                return
            assert message["type"] == "next" and not message["payload"].get("errors"), message
            out.append(message["payload"]["data"]["queuePosition"])


def expected_messages(position: int, ticks: int) -> int:
    """The first ticket, then one per tick until (and including) the admission."""
    return 1 + min(ticks, math.ceil(position / RATE))


async def test_two_thousand_join_and_are_admitted_in_order(
    app: Starlette, rt: Runtime, live_server: LiveServer
):
    # given an event admitting 200 per second whose line is open, and 2,000 customers
    sale = await queue_sale(rt, capacity=5000, admit_per_second=RATE)
    event_id = sale.event.id
    clock = Clock(time.time())
    ticker, _catalog = catalog_ticker(rt, clock)
    (opened,) = await ticker.tick()
    assert opened.state is QueueState.OPEN
    fans = await customers(rt, JOINERS)
    tokens = {user.id: token for user, token in fans}

    # when they all join through GraphQL, 32 at a time, from 20 addresses
    gate = asyncio.Semaphore(CONCURRENCY)
    async with AsyncExitStack() as stack:
        pool = await clients(app, stack)

        async def join(index: int, user_id: str) -> tuple[str, dict[str, Any]]:
            async with gate:
                result = await gql(
                    pool[index % ADDRESSES],
                    JOIN,
                    {"e": event_id, "d": f"device-{index}"},
                    token=tokens[user_id],
                )
            return user_id, result.data["joinQueue"]

        tickets = dict(
            await asyncio.gather(*(join(i, user.id) for i, (user, _t) in enumerate(fans)))
        )

    # then each has a place of its own, and an estimate from the rate
    position = {user_id: ticket["position"] for user_id, ticket in tickets.items()}
    estimate = {user_id: ticket["estimatedWaitSeconds"] for user_id, ticket in tickets.items()}
    assert sorted(position.values()) == list(range(1, JOINERS + 1))
    assert {t["status"] for t in tickets.values()} == {"WAITING"}
    assert all(
        estimate[u] == math.ceil((position[u] - 1) / RATE) and tickets[u]["queueToken"] is None
        for u in tickets
    )

    # and 50 of them, spread along the line, watch over WebSockets
    watched = [user.id for user, _t in fans[:: JOINERS // WATCHERS]]
    streams: dict[str, list[dict[str, Any]]] = {u: [] for u in watched}
    watchers = [
        asyncio.create_task(watch(live_server, tokens[u], event_id, streams[u])) for u in watched
    ]
    try:
        await until(lambda: all(streams[u] for u in watched), "every watcher's first ticket")

        # when the ticker admits, one tick per (test) second
        admitted_at: dict[str, int] = {}
        order: list[str] = []
        per_tick: list[int] = []
        for tick in range(1, JOINERS // RATE + 2):
            clock.now += 1
            (report,) = await ticker.tick()
            per_tick.append(len(report.admitted))
            for user_id, _seq in report.admitted:
                assert user_id not in admitted_at, f"{user_id} admitted twice"
                admitted_at[user_id] = tick
                order.append(user_id)
            await until(
                lambda tick=tick: all(  # type: ignore[misc]
                    len(streams[u]) >= expected_messages(position[u], tick) for u in watched
                ),
                f"the watchers to hear tick {tick}",
            )
        await asyncio.wait_for(asyncio.gather(*watchers), 30)
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

    # then all 2,000 were admitted, 200 a tick, each exactly once, in line order
    assert per_tick == [RATE] * (JOINERS // RATE) + [0]
    assert len(order) == len(set(order)) == JOINERS
    assert order == sorted(tickets, key=lambda u: position[u])
    snapshot = await rt.backends.waiting_room.snapshot(event_id)
    assert (snapshot.waiting, snapshot.admitted) == (0, JOINERS)

    # and each waited what it was told, give or take the tick that let it in
    assert all(0 <= admitted_at[u] - estimate[u] <= 1 for u in tickets)

    # and every watcher saw its position only go down, tick by tick, then its admission
    for user_id in watched:
        stream = streams[user_id]
        *waiting, last = stream
        assert [t["position"] for t in waiting] == [
            position[user_id] - RATE * k for k in range(math.ceil(position[user_id] / RATE))
        ]
        assert all(t["status"] == "WAITING" for t in waiting)
        waits = [t["estimatedWaitSeconds"] for t in waiting]
        assert waits == sorted(waits, reverse=True)
        assert last["status"] == "ADMITTED" and last["queueToken"] and last["expiresAt"]


async def test_a_watcher_of_a_line_it_is_not_in_is_told_not_found(
    rt: Runtime, live_server: LiveServer
):
    sale = await queue_sale(rt)
    ((_user, token),) = await customers(rt, 1)
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {token}"})
        op = await ws.subscribe(POSITION, {"e": sale.event.id})
        message = await ws.receive()
        assert message["id"] == op
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "NOT_FOUND"
