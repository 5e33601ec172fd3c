"""Webhook deliveries to real HTTP receivers (uvicorn on loopback): retries that carry the same
event id, signatures an integrator verifies, 410, redelivery, isolation between endpoints,
timeouts, the size cap, the SSRF guard at delivery and tenant scoping."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.models.identity import Role
from boxoffice.models.webhooks import WebhookDelivery, WebhookDeliveryStatus
from boxoffice.runtime import Runtime
from boxoffice.services import webhooks
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.webhook_delivery import WebhookSender, fanout_consumer
from boxoffice.services.webhook_signatures import sign
from tests.helpers import gql, make_tenant, make_user, token_for, viewer_for
from tests.live_servers import serving
from tests.outbox_events import emit_event, order_resource
from tests.webhook_receivers import Receiver, readme_verifier

CREATE = """
mutation($i: CreateWebhookInput!) { createWebhook(input: $i) { secret webhook { id } } }"""
DELIVERIES = """
query($id: ID!, $first: Int, $after: String) {
  webhookDeliveries(webhookId: $id, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { node { id eventId type status attemptCount lastStatusCode lastError deliveredAt
      attempts { succeeded statusCode error durationMs responseBody } } } } }"""
WEBHOOK = "query($id: ID!) { webhook(id: $id) { status disabledReason consecutiveFailures } }"
UPDATE = (
    "mutation($id: ID!, $i: UpdateWebhookInput!) { updateWebhook(id: $id, input: $i) { status } }"
)
REDELIVER = "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id status } }"
ROTATE = "mutation($id: ID!, $g: Int) { rotateWebhookSecret(id: $id, graceSeconds: $g) { secret } }"


class Setup:
    def __init__(self, rt: Runtime, client: httpx.AsyncClient) -> None:
        self.rt, self.client = rt, client
        self.started: datetime | None = None  # the first send; later ones are relative to it

    async def organizer(self, name: str = "Laugh Lab") -> tuple[str, str]:
        tenant = await make_tenant(self.rt, name)
        user = await make_user(
            self.rt, f"org@{name.split()[0].lower()}.test", Role.ORGANIZER, tenant
        )
        return tenant.id, await token_for(self.rt, user)

    async def webhook(self, token: str, url: str, events: list[str]) -> tuple[str, str]:
        result = await gql(self.client, CREATE, {"i": {"url": url, "events": events}}, token=token)
        created = result.data["createWebhook"]
        return created["webhook"]["id"], created["secret"]

    async def fan_out(self) -> None:
        await dispatch_once(self.rt, fanout_consumer())

    async def send(self, after: timedelta = timedelta(0)) -> None:
        self.started = self.started or utcnow()
        await WebhookSender(self.rt).run_until_idle(now=self.started + after)

    async def deliveries(self, token: str, webhook_id: str) -> list[dict[str, Any]]:
        result = await gql(self.client, DELIVERIES, {"id": webhook_id, "first": 50}, token=token)
        return [e["node"] for e in result.data["webhookDeliveries"]["edges"]]


@pytest.fixture
def setup(rt: Runtime, client: httpx.AsyncClient) -> Setup:
    return Setup(rt, client)


async def test_a_receiver_failing_twice_gets_each_order_paid_once(setup: Setup, rt: Runtime):
    receiver = Receiver(answers=[500, 500])
    verify = readme_verifier()
    async with serving(receiver.app) as server:
        # given an endpoint for order.paid, and two paid orders among other events
        tenant_id, token = await setup.organizer()
        hook, secret = await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        orders = [order_resource("BO1"), order_resource("BO2")]
        paid = [await emit_event(rt, "order.paid", o, tenant_id=tenant_id) for o in orders]
        await emit_event(rt, "order.created", tenant_id=tenant_id)
        await emit_event(rt, "order.paid", tenant_id=(await make_tenant(rt, "Else")).id)
        await setup.fan_out()
        # when the sender runs as time passes (the receiver answers 500 to the first two tries)
        for hours in range(4):
            await setup.send(timedelta(hours=hours))
    # then each order was processed once, and every retry carried the same event id
    assert sorted(receiver.processed) == sorted(e.event_id for e in paid)
    assert {e["data"]["orderNo"] for e in receiver.processed.values()} == {"BO1", "BO2"}
    assert len(receiver.requests) == 4
    by_event: dict[str, set[str]] = {}
    for request in receiver.requests:
        body = request.event
        assert request.headers["boxoffice-event-id"] == body["id"]
        assert request.headers["boxoffice-event-type"] == body["type"] == "order.paid"
        assert request.headers["content-type"] == "application/json"
        assert body["tenantId"] == tenant_id
        by_event.setdefault(body["id"], set()).add(request.headers["boxoffice-delivery-id"])
        # the signature verifies as an integrator checks it; a tampered body does not
        signature = request.headers["boxoffice-signature"]
        assert verify(secret, signature, request.body)
        assert not verify(secret, signature, request.body.replace(b"BO", b"XO"))
        assert not verify(secret, signature, request.body + b" ")
        assert not verify("whsec_wrong", signature, request.body)
    assert all(len(ids) == 1 for ids in by_event.values())
    # and the deliveries list shows the attempts and the answers
    listed = await setup.deliveries(token, hook)
    assert len(listed) == 2
    assert {d["status"] for d in listed} == {"SUCCEEDED"}
    statuses = sorted([a["statusCode"] for a in d["attempts"]] for d in listed)
    assert statuses == [[200], [500, 200]] or statuses == [[500, 200], [500, 200]]
    failed_once = [d for d in listed if d["attemptCount"] == 2]
    assert failed_once
    first_try = failed_once[0]["attempts"][0]
    assert first_try["responseBody"] == "nope 500"
    assert first_try["error"] == "HTTP 500" and not first_try["succeeded"]
    assert failed_once[0]["attempts"][1]["responseBody"] == "ok"
    assert all(a["durationMs"] >= 0 for d in listed for a in d["attempts"])


async def test_nothing_is_sent_again_once_delivered(setup: Setup, rt: Runtime):
    receiver = Receiver()
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        await setup.webhook(token, f"{server.http_url}/hook", ["*"])
        await emit_event(rt, "ticket.issued", {"id": "t1", "ticketSn": "SN1"}, tenant_id=tenant_id)
        await setup.fan_out()
        await setup.fan_out()  # the consumer running an event again adds no delivery
        await setup.send()
        await setup.send(timedelta(days=1))
    assert len(receiver.requests) == 1
    assert receiver.requests[0].event["data"] == {"id": "t1", "ticketSn": "SN1"}


async def test_signatures_during_a_secret_rotation(setup: Setup, rt: Runtime):
    receiver = Receiver()
    verify = readme_verifier()
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        hook, old = await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        # when the secret is rotated with a grace period and an event is delivered
        rotated = await gql(setup.client, ROTATE, {"id": hook, "g": 3600}, token=token)
        new = rotated.data["rotateWebhookSecret"]["secret"]
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        await setup.send()
    # then it carries a signature per valid secret, and either secret verifies
    request = receiver.requests[0]
    header = request.headers["boxoffice-signature"]
    assert header.count("v1=") == 2
    assert verify(new, header, request.body)
    assert verify(old, header, request.body)
    # and an old (replayed) signature is refused by the integrator's tolerance check
    stale = sign(request.body, [new], timestamp=int(time.time()) - 600)
    assert not verify(new, stale, request.body)


async def test_gone_disables_the_endpoint_and_redelivery_works(setup: Setup, rt: Runtime):
    receiver = Receiver(answers=[410])
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        hook, _secret = await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        first = await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        # when the endpoint answers 410 Gone
        await setup.send()
        # then it is disabled and the delivery failed, without retries
        state = (await gql(setup.client, WEBHOOK, {"id": hook}, token=token)).data["webhook"]
        assert state["status"] == "DISABLED"
        assert state["disabledReason"] == "the endpoint answered 410 Gone"
        [gone] = await setup.deliveries(token, hook)
        assert gone["status"] == "FAILED" and gone["lastStatusCode"] == 410
        # and later events are not queued for it, nor sent
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        await setup.send(timedelta(days=1))
        assert len(receiver.requests) == 1
        # when redelivering while disabled, it says so
        refused = await gql(setup.client, REDELIVER, {"id": gone["id"]}, token=token)
        assert refused.code == "BAD_USER_INPUT"
        # when the organizer enables it again and redelivers
        await gql(setup.client, UPDATE, {"id": hook, "i": {"enabled": True}}, token=token)
        again = await gql(setup.client, REDELIVER, {"id": gone["id"]}, token=token)
        assert again.data["redeliverWebhook"] == {"id": gone["id"], "status": "PENDING"}
        await WebhookSender(rt).run_until_idle()
    # then the same delivery of the same event succeeds, with both attempts listed
    assert len(receiver.requests) == 2
    assert receiver.requests[1].headers["boxoffice-event-id"] == first.event_id
    assert receiver.requests[1].headers["boxoffice-delivery-id"] == gone["id"]
    [done] = await setup.deliveries(token, hook)
    assert done["status"] == "SUCCEEDED" and done["deliveredAt"]
    assert [a["statusCode"] for a in done["attempts"]] == [410, 200]


async def test_one_failing_endpoint_never_delays_another(setup: Setup, rt: Runtime):
    stuck, healthy = Receiver(), Receiver()
    stuck.gate = asyncio.Event()
    async with serving(stuck.app) as slow, serving(healthy.app) as fast:
        tenant_id, token = await setup.organizer()
        await setup.webhook(token, f"{slow.http_url}/hook", ["order.paid"])
        await setup.webhook(token, f"{fast.http_url}/hook", ["order.paid"])
        for _ in range(3):
            await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        sender = WebhookSender(rt)
        try:
            # when the sender starts while one endpoint hangs on its first request
            await sender.tick()
            await asyncio.wait_for(stuck.arrived.wait(), 10)
            # then the other endpoint still receives all its events
            async with asyncio.timeout(10):
                while len(healthy.processed) < 3:
                    await asyncio.sleep(0.02)
            assert len(stuck.requests) == 1 and not stuck.processed
            # the healthy endpoint's task finishes recording its last attempt, then only the
            # stuck one is left running
            async with asyncio.timeout(10):
                while sender.running != 1:
                    await asyncio.sleep(0.02)
        finally:
            stuck.gate.set()
            await sender.run_until_idle()
    assert len(stuck.processed) == 3


@pytest.mark.settings(webhook_timeout_seconds=0.3)
async def test_a_hanging_endpoint_times_out_and_backs_off(setup: Setup, rt: Runtime):
    receiver = Receiver()
    receiver.gate = asyncio.Event()
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        hook, _ = await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        try:
            await setup.send()
        finally:
            receiver.gate.set()
    # then the attempt recorded the timeout, the endpoint backs off, the other event waits
    listed = await setup.deliveries(token, hook)
    tried = [d for d in listed if d["attemptCount"]]
    assert len(tried) == 1
    assert tried[0]["status"] == "PENDING"
    assert tried[0]["attempts"][0]["error"] == "timed out after 0.3 s"
    assert tried[0]["attempts"][0]["statusCode"] is None
    state = (await gql(setup.client, WEBHOOK, {"id": hook}, token=token)).data["webhook"]
    assert state["consecutiveFailures"] == 1


@pytest.mark.settings(webhook_max_response_bytes=4096)
async def test_only_the_start_of_a_large_answer_is_read_and_kept(setup: Setup, rt: Runtime):
    receiver = Receiver()
    receiver.body_size = 1_000_000
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        hook, _ = await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        await setup.send()
    [delivery] = await setup.deliveries(token, hook)
    assert delivery["status"] == "SUCCEEDED"
    kept = delivery["attempts"][0]["responseBody"]
    assert kept == "ok" * 512


async def test_failures_give_up_after_the_retry_window(setup: Setup, rt: Runtime):
    receiver = Receiver(default=503)
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        hook, _ = await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        # when it fails every time for more than three days, tried as the backoff allows
        hours = 0
        while hours <= 80:
            await setup.send(timedelta(hours=hours))
            hours += 7
    [delivery] = await setup.deliveries(token, hook)
    # then it was retried with growing gaps, then given up
    assert delivery["status"] == "FAILED"
    assert delivery["lastError"] == "HTTP 503"
    assert 5 <= delivery["attemptCount"] == len(receiver.requests) <= 12


@pytest.mark.parametrize(
    "marker", [{"env": "prod"}, {"webhook_allow_private_addresses": False}], ids=["prod", "setting"]
)
async def test_private_targets_are_refused_at_delivery(rt: Runtime, marker: dict[str, Any]):
    # given endpoints saved while private addresses were allowed (or whose DNS changed since)
    rt.settings = rt.settings.model_copy(update=marker)
    receiver = Receiver()
    async with serving(receiver.app) as server:
        tenant = await make_tenant(rt)
        operator = await viewer_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
        for url in (f"{server.http_url}/hook", "http://10.0.0.1:9/hook"):
            await webhooks.create_webhook(
                db=rt.db,
                viewer=operator,
                url=url,
                events=["order.paid"],
                tenant_id=tenant.id,
                allow_private_addresses=True,
            )
        await emit_event(rt, "order.paid", tenant_id=tenant.id)
        await dispatch_once(rt, fanout_consumer())
        # when the sender runs under the guard
        await WebhookSender(rt).run_until_idle()
    # then nothing was sent, and each attempt says why
    assert receiver.requests == []
    async with rt.db.read() as session:
        rows = (await session.exec(select(WebhookDelivery))).all()
    assert {r.status for r in rows} == {WebhookDeliveryStatus.PENDING}
    errors = sorted(r.last_error or "" for r in rows)
    assert errors == [
        "refused: 10.0.0.1 resolves to a private address (10.0.0.1)",
        "refused: 127.0.0.1 resolves to a loopback address (127.0.0.1)",
    ]


async def test_the_request_goes_to_the_resolved_address_with_the_original_host(
    setup: Setup, rt: Runtime
):
    receiver = Receiver()
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        await setup.webhook(token, f"http://localhost:{server.port}/hook", ["order.paid"])
        await emit_event(rt, "order.paid", tenant_id=tenant_id)
        await setup.fan_out()
        await setup.send()
    assert receiver.requests[0].headers["host"] == f"localhost:{server.port}"


async def test_events_reach_their_tenants_endpoints_and_the_platform_ones(
    setup: Setup, rt: Runtime
):
    alpha, beta, platform, late = Receiver(), Receiver(), Receiver(), Receiver()
    async with (
        serving(alpha.app) as a,
        serving(beta.app) as b,
        serving(platform.app) as p,
        serving(late.app) as z,
    ):
        alpha_tenant, alpha_token = await setup.organizer("Alpha")
        beta_tenant, beta_token = await setup.organizer("Beta")
        operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
        await setup.webhook(alpha_token, f"{a.http_url}/hook", ["*"])
        await setup.webhook(beta_token, f"{b.http_url}/hook", ["order.paid"])
        await setup.webhook(operator, f"{p.http_url}/hook", ["*"])
        ours = await emit_event(rt, "order.paid", tenant_id=alpha_tenant)
        theirs = await emit_event(rt, "order.paid", tenant_id=beta_tenant)
        everyone = await emit_event(rt, "event.published", {"id": "e1"}, tenant_id=None)
        await emit_event(
            rt, "queue.admitted", {"id": "q1"}, tenant_id=alpha_tenant
        )  # not a webhook topic
        # an endpoint made after the events does not get them
        await setup.webhook(alpha_token, f"{z.http_url}/hook", ["*"])
        await setup.fan_out()
        await setup.send()
    assert set(alpha.processed) == {ours.event_id}
    assert set(beta.processed) == {theirs.event_id}
    assert set(platform.processed) == {ours.event_id, theirs.event_id, everyone.event_id}
    assert late.requests == []


@pytest.mark.settings(run_background_jobs=True)
async def test_the_background_jobs_deliver_on_their_own(setup: Setup, rt: Runtime):
    receiver = Receiver()
    async with serving(receiver.app) as server:
        tenant_id, token = await setup.organizer()
        await setup.webhook(token, f"{server.http_url}/hook", ["order.paid"])
        event = await emit_event(rt, "order.paid", tenant_id=tenant_id)
        # when nothing but the app's job runner is at work
        await asyncio.wait_for(receiver.arrived.wait(), 15)
    # then the event arrived
    assert receiver.requests[0].headers["boxoffice-event-id"] == event.event_id
