"""Subscriptions over a real WebSocket (uvicorn on loopback), authenticated in
``connection_init``."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from boxoffice.runtime import Runtime
from tests.conftest import LiveServer
from tests.helpers import gql, make_user, token_for
from tests.ws import graphql_ws

ACCOUNT_UPDATES = "subscription { accountUpdates { id nickname status } }"


async def test_subscription_end_to_end(
    live_server: LiveServer, client: httpx.AsyncClient, rt: Runtime
):
    # given a user subscribed with their token in connection_init
    user = await make_user(rt, "sub@example.com")
    token = await token_for(rt, user)
    async with graphql_ws(live_server.ws_url) as ws:
        assert (await ws.init({"Authorization": f"Bearer {token}"}))["type"] == "connection_ack"
        op = await ws.subscribe(ACCOUNT_UPDATES)
        await asyncio.sleep(0.2)  # let the subscription reach the broker
        # when the profile changes over HTTP
        await gql(
            client,
            'mutation { updateProfile(input: {nickname: "Renamed"}) { id } }',
            token=token,
        )
        # then the subscriber is told
        payload = await ws.next_payload(op)
        assert payload["data"]["accountUpdates"] == {
            "id": user.id,
            "nickname": "Renamed",
            "status": "ACTIVE",
        }


async def test_queries_work_over_the_socket(live_server: LiveServer, rt: Runtime):
    user = await make_user(rt, "q@example.com")
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {await token_for(rt, user)}"})
        op = await ws.subscribe("{ me { id } }")
        assert (await ws.next_payload(op))["data"]["me"]["id"] == user.id


async def test_bad_token_closes_with_4403(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.send({"type": "connection_init", "payload": {"Authorization": "Bearer nonsense"}})
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_subscribe_before_init_closes_with_4401(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.subscribe(ACCOUNT_UPDATES)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.receive()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


async def test_anonymous_cannot_follow_an_account(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        op = await ws.subscribe(ACCOUNT_UPDATES)
        message = await ws.receive()
        assert message["id"] == op and message["type"] in ("error", "next")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
