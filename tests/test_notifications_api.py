"""In-app notifications over GraphQL: the list, marking read, the live subscription over a
real WebSocket; and the operators' dead letters."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.models.identity import AuditEntry, Role
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services import notifications
from boxoffice.services.outbox import Consumer, dispatch_once
from tests.conftest import LiveServer
from tests.helpers import gql, make_user, token_for
from tests.outbox_events import emit_event, order_resource
from tests.ws import graphql_ws

MY_NOTIFICATIONS = """
query($unread: Boolean, $first: Int, $after: String) {
  myNotifications(unreadOnly: $unread, first: $first, after: $after) {
    totalCount unreadCount
    edges { cursor node { id topic title body locale resourceType resourceId read readAt } }
    pageInfo { hasNextPage endCursor }
  }
}"""
MARK_READ = "mutation($ids: [ID!]) { markNotificationsRead(ids: $ids) }"
SUBSCRIBE = "subscription { notifications { id topic title body resourceId read } }"


async def deliver(rt: Runtime) -> None:
    await dispatch_once(rt, notifications.notification_consumer())


async def test_my_notifications_pages_newest_first_and_marks_read(
    client: httpx.AsyncClient, rt: Runtime
):
    # given three paid orders of one customer and one of another
    fan = await make_user(rt, "fan@example.com")
    other = await make_user(rt, "other@example.com")
    orders = [order_resource(f"BO{n}") for n in range(3)]
    for order in orders:
        await emit_event(rt, "order.paid", order, user_id=fan.id)
    await emit_event(rt, "order.paid", order_resource("BOX"), user_id=other.id)
    await deliver(rt)
    token = await token_for(rt, fan)
    # when the customer pages through their messages
    first = (await gql(client, MY_NOTIFICATIONS, {"first": 2}, token=token)).data
    page = first["myNotifications"]
    rest = (
        await gql(
            client,
            MY_NOTIFICATIONS,
            {"first": 2, "after": page["pageInfo"]["endCursor"]},
            token=token,
        )
    ).data["myNotifications"]
    # then they see only theirs, newest first, all unread
    nodes = [e["node"] for e in page["edges"] + rest["edges"]]
    assert [n["resourceId"] for n in nodes] == [o["id"] for o in reversed(orders)]
    assert all(o["orderNo"] in n["body"] for n, o in zip(nodes, reversed(orders), strict=True))
    assert page["totalCount"] == 3 and page["unreadCount"] == 3
    assert page["pageInfo"]["hasNextPage"] and not rest["pageInfo"]["hasNextPage"]
    assert {n["topic"] for n in nodes} == {"order.paid"}
    assert all(n["resourceType"] == "Order" and not n["read"] for n in nodes)
    # when one is marked read, with someone else's id in the list
    others = (await gql(client, MY_NOTIFICATIONS, {}, token=await token_for(rt, other))).data[
        "myNotifications"
    ]["edges"][0]["node"]["id"]
    marked = await gql(client, MARK_READ, {"ids": [nodes[0]["id"], others]}, token=token)
    # then only the caller's changed
    assert marked.data["markNotificationsRead"] == 1
    unread = (await gql(client, MY_NOTIFICATIONS, {"unread": True}, token=token)).data
    assert [e["node"]["id"] for e in unread["myNotifications"]["edges"]] == [
        nodes[1]["id"],
        nodes[2]["id"],
    ]
    assert unread["myNotifications"]["unreadCount"] == 2
    # when the rest are marked read at once (ids null), twice
    assert (await gql(client, MARK_READ, {"ids": None}, token=token)).data == {
        "markNotificationsRead": 2
    }
    assert (await gql(client, MARK_READ, {}, token=token)).data == {"markNotificationsRead": 0}
    everything = (await gql(client, MY_NOTIFICATIONS, {}, token=token)).data["myNotifications"]
    assert everything["unreadCount"] == 0
    assert all(e["node"]["read"] and e["node"]["readAt"] for e in everything["edges"])
    # and the other customer's message is still unread
    theirs = (await gql(client, MY_NOTIFICATIONS, {}, token=await token_for(rt, other))).data
    assert theirs["myNotifications"]["unreadCount"] == 1


async def test_notifications_need_a_sign_in(client: httpx.AsyncClient):
    assert (await gql(client, MY_NOTIFICATIONS)).code == "UNAUTHENTICATED"
    assert (await gql(client, MARK_READ)).code == "UNAUTHENTICATED"


async def test_bad_cursor_and_too_many_ids_name_the_field(client: httpx.AsyncClient, rt: Runtime):
    token = await token_for(rt, await make_user(rt, "f@example.com"))
    bad = await gql(client, MY_NOTIFICATIONS, {"after": "nope"}, token=token)
    assert bad.code == "BAD_USER_INPUT" and bad.error["extensions"]["field"] == "after"
    many = await gql(client, MARK_READ, {"ids": [str(i) for i in range(501)]}, token=token)
    assert many.code == "BAD_USER_INPUT" and many.error["extensions"]["field"] == "ids"


async def test_the_subscription_pushes_new_messages(live_server: LiveServer, rt: Runtime):
    # given a customer subscribed over a real WebSocket, and someone else's message
    fan = await make_user(rt, "live@example.com")
    other = await make_user(rt, "else@example.com")
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {await token_for(rt, fan)}"})
        op = await ws.subscribe(SUBSCRIBE)
        await asyncio.sleep(0.2)  # let the subscription reach the broker
        # when an order of theirs is paid (after someone else's) and the dispatcher runs
        await emit_event(rt, "order.paid", order_resource("BO-OTHER"), user_id=other.id)
        order = order_resource("BO-LIVE")
        await emit_event(rt, "order.paid", order, user_id=fan.id, locale="en")
        await deliver(rt)
        # then their message arrives, and only theirs
        pushed = (await ws.next_payload(op))["data"]["notifications"]
        assert pushed["topic"] == "order.paid"
        assert pushed["title"] == "Payment received"
        assert "BO-LIVE" in pushed["body"]
        assert pushed["resourceId"] == order["id"]
        assert pushed["read"] is False
        # and a second one follows
        await emit_event(rt, "refund.completed", {"id": "r9", "refundNo": "RF9"}, user_id=fan.id)
        await deliver(rt)
        second = (await ws.next_payload(op))["data"]["notifications"]
        assert second["topic"] == "refund.completed"
        assert "RF9" in second["body"]


async def test_the_subscription_needs_a_sign_in(live_server: LiveServer):
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()
        op = await ws.subscribe(SUBSCRIBE)
        message = await ws.receive()
        assert message["id"] == op
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


DEAD_LETTERS = """
query($consumer: String) { deadLetters(consumer: $consumer) {
  totalCount edges { node { consumer eventId topic tenantId resourceType attempts lastError } } } }
"""
RETRY = "mutation($c: String!, $e: ID!) { retryDeadLetter(consumer: $c, eventId: $e) }"


async def test_operators_see_dead_letters_and_retry_them(client: httpx.AsyncClient, rt: Runtime):
    # given a consumer that gives up on an event after two failures
    event = await emit_event(rt, "order.paid", tenant_id=None)
    failing = True
    handled: list[str] = []

    async def handle(_rt: Runtime, e: OutboxEvent) -> None:
        if failing:
            raise ConnectionError("SMS gateway down")
        handled.append(e.event_id)

    consumer = Consumer("sms-test", handle, max_attempts=2, backoff=lambda n: 1.0)
    now = utcnow()
    await dispatch_once(rt, consumer, now=now)
    await dispatch_once(rt, consumer, now=now + timedelta(seconds=5))
    operator = await make_user(rt, "op@example.com", Role.OPERATOR)
    token = await token_for(rt, operator)
    # when the operator looks
    found = (await gql(client, DEAD_LETTERS, {"consumer": "sms-test"}, token=token)).data
    # then the dead delivery is listed with its attempts and error
    assert found["deadLetters"]["totalCount"] == 1
    node = found["deadLetters"]["edges"][0]["node"]
    assert node == {
        "consumer": "sms-test",
        "eventId": event.event_id,
        "topic": "order.paid",
        "tenantId": None,
        "resourceType": "Order",
        "attempts": 2,
        "lastError": "ConnectionError: SMS gateway down",
    }
    # when the gateway is back and the operator retries it
    failing = False
    retried = await gql(client, RETRY, {"c": "sms-test", "e": event.event_id}, token=token)
    assert retried.data == {"retryDeadLetter": True}
    await dispatch_once(rt, consumer, now=now + timedelta(seconds=10))
    # then it is delivered, no longer dead, and the retry was audited
    assert handled == [event.event_id]
    after = (await gql(client, DEAD_LETTERS, {}, token=token)).data["deadLetters"]
    assert after["totalCount"] == 0
    again = await gql(client, RETRY, {"c": "sms-test", "e": event.event_id}, token=token)
    assert again.code == "NOT_FOUND"
    async with rt.db.read() as session:
        entries = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "outbox.retry_dead"))
        ).all()
    assert [(e.actor_id, e.target_id) for e in entries] == [(operator.id, event.event_id)]


async def test_dead_letters_are_for_operators_only(client: httpx.AsyncClient, rt: Runtime):
    token = await token_for(rt, await make_user(rt, "c@example.com"))
    assert (await gql(client, DEAD_LETTERS, token=token)).code == "FORBIDDEN"
    assert (await gql(client, RETRY, {"c": "x", "e": "y"}, token=token)).code == "FORBIDDEN"
