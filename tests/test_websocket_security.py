"""WebSocket abuse over a real socket: foreign origins, graphql-transport-ws protocol abuse
closed with the protocol's codes, and subscriber limits per connection and per user."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from boxoffice.runtime import Runtime
from tests.conftest import LiveServer
from tests.helpers import make_user, token_for
from tests.order_factories import on_sale
from tests.ws import GraphQLWebSocket, graphql_ws

SEATS = "subscription($s: ID!) { seatAvailability(sessionId: $s) { sessionId version } }"
ACCOUNT = "subscription { accountUpdates { id } }"


async def closed_with(ws: GraphQLWebSocket) -> int:
    """The close code the server sent (after reading whatever came before it)."""
    try:
        while True:
            await ws.receive()
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, "the server did not close"
        return closed.rcvd.code


def subscribe_message(op_id: str, query: str, variables: dict[str, object]) -> dict[str, object]:
    return {"id": op_id, "type": "subscribe", "payload": {"query": query, "variables": variables}}


# --- origins ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(env="prod", allowed_origins="https://tickets.example.com")
async def test_prod_refuses_a_foreign_origin(live_server: LiveServer):
    # a page on another site cannot open the socket
    with pytest.raises(InvalidStatus) as refused:
        async with graphql_ws(live_server.ws_url, origin="https://evil.example.net"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    # the allowed site and non-browser clients (no Origin) can
    for origin in ("https://tickets.example.com", None):
        async with graphql_ws(live_server.ws_url, origin=origin) as ws:  # type: ignore[arg-type]
            assert (await ws.init())["type"] == "connection_ack"


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(env="prod")
async def test_prod_without_an_allow_list_refuses_every_foreign_origin(live_server: LiveServer):
    with pytest.raises(InvalidStatus) as refused:
        async with graphql_ws(live_server.ws_url, origin="https://tickets.example.com"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("backend", ["embedded"])
async def test_dev_accepts_any_origin(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url, origin="http://localhost:5173") as ws:  # type: ignore[arg-type]
        assert (await ws.init())["type"] == "connection_ack"


# --- protocol abuse ---------------------------------------------------------------------------


async def test_subscribe_before_ack_closes_with_4401(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.send(subscribe_message("1", ACCOUNT, {}))
        assert await closed_with(ws) == 4401


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(ws_init_timeout_seconds=0.3)
async def test_no_connection_init_in_time_closes_with_4408(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        assert await closed_with(ws) == 4408


@pytest.mark.parametrize("backend", ["embedded"])
async def test_a_second_connection_init_closes_with_4429(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.send({"type": "connection_init", "payload": {}})
        assert await closed_with(ws) == 4429


async def test_a_duplicate_operation_id_closes_with_4409(live_server: LiveServer, rt: Runtime):
    sale = await on_sale(rt)
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()
        await ws.send(subscribe_message("dup", SEATS, {"s": sale.session.id}))
        await ws.send(subscribe_message("dup", SEATS, {"s": sale.session.id}))
        assert await closed_with(ws) == 4409


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        json.dumps({"type": "subscribe", "payload": {"query": "{ __typename }"}}),  # no id
        json.dumps({"id": "1", "type": "subscribe"}),  # no payload
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ __typename "}}),
        json.dumps({"id": "1", "type": "launch_missiles"}),
        json.dumps({"payload": {}}),  # no type
        json.dumps(["connection_init"]),
        json.dumps("subscribe"),
        json.dumps({"id": "1", "type": "subscribe", "payload": "{ __typename }"}),
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": 42}}),
        json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ a " * 4000 + "}"}}),
    ],
    ids=[
        "not-json",
        "no-id",
        "no-payload",
        "syntax",
        "unknown-type",
        "no-type",
        "array",
        "string",
        "payload-not-object",
        "query-not-string",
        "too-many-tokens",
    ],
)
async def test_malformed_messages_close_with_4400(live_server: LiveServer, raw: str):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()
        await ws.ws.send(raw)
        assert await closed_with(ws) == 4400


@pytest.mark.parametrize("backend", ["embedded"])
async def test_a_non_object_init_payload_closes_with_4400(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.send({"type": "connection_init", "payload": "Bearer x"})
        assert await closed_with(ws) == 4400


@pytest.mark.parametrize("backend", ["embedded"])
async def test_a_binary_frame_closes_with_4400(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()
        await ws.ws.send(b'{"type": "ping"}')
        assert await closed_with(ws) == 4400


# --- subscriber limits ------------------------------------------------------------------------


async def next_error(ws: GraphQLWebSocket, op_id: str) -> dict[str, object]:
    while True:
        message = await ws.receive()
        if message.get("id") == op_id and message["type"] == "error":
            return message["payload"][0]
        assert message.get("id") != op_id or message["type"] == "next", message


@pytest.mark.settings(max_subscriptions_per_connection=3)
async def test_one_connection_holds_at_most_its_limit(live_server: LiveServer, rt: Runtime):
    sale = await on_sale(rt)
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()
        ops = [await ws.subscribe(SEATS, {"s": sale.session.id}) for _ in range(3)]
        for op in ops:
            await ws.next_payload(op)
        # when a fourth subscribes, that one is refused and the socket stays open
        fourth = await ws.subscribe(SEATS, {"s": sale.session.id})
        error = await next_error(ws, fourth)
        assert error["extensions"] == {"code": "RATE_LIMITED", "status": 1429}  # type: ignore[comparison-overlap]
        # and once one completes there is room again
        await ws.send({"id": ops[0], "type": "complete"})
        await asyncio.sleep(0.1)
        again = await ws.subscribe(SEATS, {"s": sale.session.id})
        assert (await ws.next_payload(again))["data"]["seatAvailability"]["sessionId"]


@pytest.mark.settings(max_subscriptions_per_user=4, max_subscriptions_per_connection=10)
async def test_one_user_holds_at_most_their_limit_across_connections(
    live_server: LiveServer, rt: Runtime
):
    # given a user with subscriptions spread over two sockets, and another user
    sale = await on_sale(rt)
    fan, other = await make_user(rt, "fan@example.com"), await make_user(rt, "other@example.com")
    auth = {"Authorization": f"Bearer {await token_for(rt, fan)}"}
    async with (
        graphql_ws(live_server.ws_url) as first,
        graphql_ws(live_server.ws_url) as second,
        graphql_ws(live_server.ws_url) as others,
    ):
        await first.init(auth)
        await second.init(auth)
        await others.init({"Authorization": f"Bearer {await token_for(rt, other)}"})
        held = [await first.subscribe(SEATS, {"s": sale.session.id}) for _ in range(2)]
        held += [await second.subscribe(SEATS, {"s": sale.session.id}) for _ in range(2)]
        for op in held[:2]:
            await first.next_payload(op)
        for op in held[2:]:
            await second.next_payload(op)
        # when the user subscribes a fifth time, on either socket
        refused = await first.subscribe(SEATS, {"s": sale.session.id})
        error = await next_error(first, refused)
        # then that subscription is refused; the other user is not affected
        assert error["extensions"] == {"code": "RATE_LIMITED", "status": 1429}  # type: ignore[comparison-overlap]
        mine = await others.subscribe(SEATS, {"s": sale.session.id})
        assert (await others.next_payload(mine))["data"]
        # and when a socket closes its slots come back
        await second.ws.close()
        await asyncio.sleep(0.3)
        assert await rt.backends.slots.count(f"subs:user:{fan.id}") == 2
        again = await first.subscribe(SEATS, {"s": sale.session.id})
        assert (await first.next_payload(again))["data"]


@pytest.mark.settings(max_subscriptions_per_user=2)
async def test_completed_operations_give_their_slot_back(live_server: LiveServer, rt: Runtime):
    # given a user whose queries over the socket finish at once
    fan = await make_user(rt, "quick@example.com")
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {await token_for(rt, fan)}"})
        # when they run more one-shot operations than the limit, one after another
        for _ in range(5):
            op = await ws.subscribe("{ me { id } }")
            assert (await ws.next_payload(op))["data"]["me"]["id"] == fan.id
            assert (await ws.receive()) == {"id": op, "type": "complete"}
        # then none is left holding a slot
        await asyncio.sleep(0.1)
        assert await rt.backends.slots.count(f"subs:user:{fan.id}") == 0


# --- subscriptions are scoped like queries ----------------------------------------------------


@pytest.mark.parametrize("backend", ["embedded"])
async def test_subscriptions_to_someone_elses_objects_are_refused(
    live_server: LiveServer, rt: Runtime
):
    # given a customer's order in tenant T1, and an organizer of another tenant
    from boxoffice.models.identity import Role
    from tests.helpers import make_tenant
    from tests.order_factories import hold_for, order_for

    sale = await on_sale(rt)
    buyer, snoop = await make_user(rt, "buyer@example.com"), await make_user(rt, "s@example.com")
    order = await order_for(
        rt, buyer, await hold_for(rt, buyer, sale.session, seat_ids=sale.seat_ids[:1])
    )
    other = await make_user(rt, "org2@example.com", Role.ORGANIZER, await make_tenant(rt, "Other"))
    probes = [
        (snoop, "subscription($o: ID!) { orderUpdates(orderId: $o) { id } }", {"o": order.id}),
        (
            other,
            "subscription($t: ID!) { salesDashboard(tenantId: $t) { period } }",
            {"t": sale.tenant.id},
        ),
    ]
    for user, query, variables in probes:
        async with graphql_ws(live_server.ws_url) as ws:
            await ws.init({"Authorization": f"Bearer {await token_for(rt, user)}"})
            op = await ws.subscribe(query, variables)
            # then the subscription ends with NOT_FOUND and sends nothing of the object
            message = await ws.receive()
            assert message["id"] == op and message["type"] in ("error", "next"), message
            errors = (
                message["payload"] if message["type"] == "error" else message["payload"]["errors"]
            )
            assert errors[0]["extensions"]["code"] == "NOT_FOUND", errors
