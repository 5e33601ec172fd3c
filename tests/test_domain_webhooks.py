"""The catalog's webhook topics come from the real changes: publishing and cancelling an event
write ``event.published``/``event.cancelled``, and the sale of a session's last ticket writes
``session.sold_out`` once — in the outbox, the ``changes`` feed and at a subscribed endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from boxoffice.errors import CatalogStateInvalid
from boxoffice.models.identity import Role, Tenant, User
from boxoffice.models.orders import Order, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services import box_office, events
from boxoffice.services.box_office import BoxOfficePayment
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.webhook_delivery import WebhookSender, fanout_consumer
from tests.catalog_factories import OPERATOR, make_event, make_session, make_tier, make_venue
from tests.helpers import gql, make_tenant, make_user, token_for, viewer_for
from tests.live_servers import serving
from tests.order_factories import OnSale, hold_for, on_sale, order_for, paid_order, pay
from tests.refund_factories import request, review
from tests.ticket_factories import organizer, ticketed_order
from tests.webhook_receivers import Receiver

CREATE_WEBHOOK = """
mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { secret webhook { id } } }"""
PUBLISH = "mutation($id: ID!) { publishEvent(id: $id) { id status } }"
CANCEL = "mutation($id: ID!, $r: String) { cancelEvent(id: $id, reason: $r) { id status } }"
CHANGES = """
query($since: String) { changes(since: $since, first: 50) {
  cursor hasMore events { id type tenantId data } } }"""


async def outbox_events(rt: Runtime, topic: str) -> list[OutboxEvent]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def changes(client: httpx.AsyncClient, token: str, topic: str) -> list[dict[str, Any]]:
    page = (await gql(client, CHANGES, {"since": None}, token=token)).data["changes"]
    assert not page["hasMore"]
    return [e for e in page["events"] if e["type"] == topic]


async def deliver(rt: Runtime) -> None:
    await dispatch_once(rt, fanout_consumer())
    await WebhookSender(rt).run_until_idle()


async def organizer_with_webhook(
    rt: Runtime, client: httpx.AsyncClient, tenant: Tenant, url: str, topics: list[str]
) -> str:
    """The token of an organizer of ``tenant`` who registered an endpoint for ``topics``."""
    user = await make_user(rt, f"org-{tenant.id.lower()}@club.test", Role.ORGANIZER, tenant)
    token = await token_for(rt, user)
    created = await gql(client, CREATE_WEBHOOK, {"i": {"url": url, "events": topics}}, token=token)
    assert created.data["createWebhook"]["webhook"]["id"]
    return token


async def test_publishing_an_event_announces_it_once(rt: Runtime, client: httpx.AsyncClient):
    receiver = Receiver()
    async with serving(receiver.app) as server:
        # given an organizer's endpoint for event.published and a draft with a session on sale
        tenant = await make_tenant(rt, "Laugh Lab")
        tenant_id = tenant.id
        url = f"{server.http_url}/hook"
        token = await organizer_with_webhook(rt, client, tenant, url, ["event.published"])
        venue = await make_venue(rt, tenant, "Hall")
        event = await make_event(rt, tenant, venue, "Premiere Night")
        await make_tier(rt, await make_session(rt, event), capacity=5)
        assert await outbox_events(rt, "event.published") == []
        # when the organizer publishes it, and publishes it again (a no-op)
        for _ in range(2):
            published = await gql(client, PUBLISH, {"id": event.id}, token=token)
            assert published.data["publishEvent"]["status"] in ("UPCOMING", "ON_SALE")
        await deliver(rt)
    # then the outbox, the changes feed and the endpoint each have it exactly once
    (written,) = await outbox_events(rt, "event.published")
    assert (written.tenant_id, written.aggregate_type, written.aggregate_id) == (
        tenant_id,
        "Event",
        event.id,
    )
    resource = written.payload["resource"]
    assert resource["id"] == event.id
    assert resource["tenantId"] == tenant_id
    assert resource["title"] == "Premiere Night"
    assert resource["status"] in ("UPCOMING", "ON_SALE")
    assert resource["publishedAt"] is not None
    assert resource["cancelledAt"] is None
    (feed,) = await changes(client, token, "event.published")
    assert feed["id"] == written.event_id and feed["data"] == resource
    assert [r.event["type"] for r in receiver.requests] == ["event.published"]
    body = receiver.requests[0].event
    assert body["id"] == written.event_id
    assert body["tenantId"] == tenant_id
    assert body["data"] == resource


async def test_cancelling_an_event_announces_it_once(rt: Runtime, client: httpx.AsyncClient):
    receiver = Receiver()
    async with serving(receiver.app) as server:
        # given a published event and an endpoint for event.cancelled (not event.published)
        sale = await on_sale(rt)
        url = f"{server.http_url}/hook"
        tenant_id = sale.tenant.id
        token = await organizer_with_webhook(rt, client, sale.tenant, url, ["event.cancelled"])
        # when the organizer cancels it with a reason, and tries again
        cancelled = await gql(
            client, CANCEL, {"id": sale.event.id, "r": "The venue flooded"}, token=token
        )
        assert cancelled.data["cancelEvent"]["status"] == "CANCELLED"
        with pytest.raises(CatalogStateInvalid):
            await events.cancel_event(
                db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=sale.event.id
            )
        await deliver(rt)
    # then there is one event.cancelled with the reason, in the feed and at the endpoint
    (written,) = await outbox_events(rt, "event.cancelled")
    assert (written.tenant_id, written.aggregate_id) == (tenant_id, sale.event.id)
    resource = written.payload["resource"]
    assert resource["id"] == sale.event.id
    assert resource["status"] == "CANCELLED"
    assert resource["cancelReason"] == "The venue flooded"
    assert resource["cancelledAt"] is not None
    (feed,) = await changes(client, token, "event.cancelled")
    assert feed["data"] == resource
    assert [r.event["type"] for r in receiver.requests] == ["event.cancelled"]
    assert receiver.requests[0].event["data"] == resource
    # and the publication before it was announced too (not to this endpoint)
    assert len(await outbox_events(rt, "event.published")) == 1


async def buyer(rt: Runtime, name: str) -> User:
    return await make_user(rt, f"{name}@fans.test")


async def small_sale(rt: Runtime) -> OnSale:
    """A session with 2 general-admission tickets and 1 seat."""
    return await on_sale(rt, ga_capacity=2, sections={"A": 1}, rows=1)


async def test_the_sale_of_the_last_ticket_announces_the_session_sold_out(
    rt: Runtime, client: httpx.AsyncClient
):
    receiver = Receiver()
    async with serving(receiver.app) as server:
        sale = await small_sale(rt)
        url = f"{server.http_url}/hook"
        tenant_id = sale.tenant.id
        token = await organizer_with_webhook(rt, client, sale.tenant, url, ["session.sold_out"])
        # given the seat ordered but not yet paid, then both general-admission tickets sold
        last = await buyer(rt, "c")
        unpaid = await order_for(
            rt, last, await hold_for(rt, last, sale.session, seat_ids=sale.seat_ids)
        )
        await paid_order(rt, await buyer(rt, "a"), sale.session, tier_id=sale.ga.id, quantity=1)
        await paid_order(rt, await buyer(rt, "b"), sale.session, tier_id=sale.ga.id, quantity=1)
        # then nothing is sold out yet: each tier is fully taken, but one order may still lapse
        assert await outbox_events(rt, "session.sold_out") == []
        # when the last order is paid
        assert (await pay(rt, last, unpaid)).status == OrderStatus.PAID
        await deliver(rt)
    # then the session is announced sold out once
    (written,) = await outbox_events(rt, "session.sold_out")
    assert (written.tenant_id, written.aggregate_type, written.aggregate_id) == (
        tenant_id,
        "Session",
        sale.session.id,
    )
    resource = written.payload["resource"]
    assert resource["id"] == sale.session.id
    assert resource["eventId"] == sale.event.id
    assert resource["tenantId"] == tenant_id
    assert resource["capacity"] == 3
    assert resource["lastOrderId"] == unpaid.id
    assert resource["soldOutAt"] is not None
    (feed,) = await changes(client, token, "session.sold_out")
    assert feed["data"] == resource
    assert [r.event["type"] for r in receiver.requests] == ["session.sold_out"]
    assert receiver.requests[0].event["data"] == resource


async def test_a_sale_that_leaves_tickets_announces_nothing(rt: Runtime):
    # given a session with three tickets
    sale = await small_sale(rt)
    # when one is ordered but not paid, and then the other two are sold in one order
    late = await buyer(rt, "b")
    await order_for(rt, late, await hold_for(rt, late, sale.session, seat_ids=sale.seat_ids))
    await paid_order(rt, await buyer(rt, "a"), sale.session, tier_id=sale.ga.id, quantity=2)
    # then the session is not sold out (every tier is taken, but an order may still lapse)
    assert await outbox_events(rt, "session.sold_out") == []
    assert len(await outbox_events(rt, "order.paid")) == 1


async def test_the_box_office_selling_the_last_ticket_announces_it(rt: Runtime):
    # given a session whose general admission is sold online
    sale = await small_sale(rt)
    await paid_order(rt, await buyer(rt, "a"), sale.session, tier_id=sale.ga.id, quantity=2)
    staff = await make_user(rt, "desk@club.test", Role.ORGANIZER, sale.tenant)
    # when the box office sells the last seat
    order = await box_office.sell(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, staff),
        session_id=sale.session.id,
        tier_id=None,
        quantity=None,
        seat_ids=sale.seat_ids,
        buyer_name=None,
        buyer_phone=None,
        payment_method=BoxOfficePayment.CASH,
    )
    # then the session is announced sold out once, by that sale
    (written,) = await outbox_events(rt, "session.sold_out")
    assert written.aggregate_id == sale.session.id
    assert written.payload["resource"]["lastOrderId"] == order.id


async def test_paying_the_last_two_orders_at_once_announces_one_sold_out(rt: Runtime):
    # given the session's three tickets in three unpaid orders
    sale = await small_sale(rt)
    pending: list[tuple[User, Order]] = []
    for name, hold in (
        ("a", {"tier_id": sale.ga.id, "quantity": 1}),
        ("b", {"tier_id": sale.ga.id, "quantity": 1}),
        ("c", {"seat_ids": sale.seat_ids}),
    ):
        user = await buyer(rt, name)
        pending.append(
            (user, await order_for(rt, user, await hold_for(rt, user, sale.session, **hold)))
        )
    await pay(rt, *pending[0])
    # when the other two are paid concurrently
    paid = await asyncio.gather(*(pay(rt, user, order) for user, order in pending[1:]))
    assert {o.status for o in paid} == {OrderStatus.PAID}
    # then exactly one of those payments announced the session sold out
    (written,) = await outbox_events(rt, "session.sold_out")
    assert written.payload["resource"]["lastOrderId"] in {o.id for _, o in pending[1:]}


async def test_selling_out_again_after_a_refund_announces_it_again(rt: Runtime):
    # given a sold-out session
    sale = await small_sale(rt)
    first = await buyer(rt, "a")
    order, _tickets = await ticketed_order(rt, first, sale, tier_id=sale.ga.id, quantity=2)
    await paid_order(rt, await buyer(rt, "b"), sale.session, seat_ids=sale.seat_ids)
    assert len(await outbox_events(rt, "session.sold_out")) == 1
    # when one order is refunded (its tickets go back on sale) and they are sold again
    _boss, staff = await organizer(rt, "boss@club.test", sale.tenant)
    await review(rt, staff, await request(rt, first, order))
    assert len(await outbox_events(rt, "session.sold_out")) == 1
    again = await paid_order(rt, await buyer(rt, "c"), sale.session, tier_id=sale.ga.id, quantity=2)
    # then the second sell-out is announced too, by the order that caused it
    announced = await outbox_events(rt, "session.sold_out")
    assert len(announced) == 2
    assert announced[1].payload["resource"]["lastOrderId"] == again.id
