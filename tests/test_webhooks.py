"""Managing webhook endpoints over GraphQL: who may, tenant scoping both ways, validation, the
SSRF guard at creation, secret rotation, deletion, and the audit trail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.models.identity import AuditEntry, Role, Tenant, User
from boxoffice.models.webhooks import WebhookSecret
from boxoffice.runtime import Runtime
from boxoffice.services.webhooks import valid_secrets
from tests.helpers import gql, make_tenant, make_user, token_for

CREATE = """
mutation($i: CreateWebhookInput!) { createWebhook(input: $i) {
  secret webhook { id tenantId url description events status } } }"""
UPDATE = """
mutation($id: ID!, $i: UpdateWebhookInput!) { updateWebhook(id: $id, input: $i) {
  id url events description status disabledReason } }"""
ROTATE = """
mutation($id: ID!, $g: Int) { rotateWebhookSecret(id: $id, graceSeconds: $g) {
  secret previousSecretExpiresAt webhook { id } } }"""
DELETE = "mutation($id: ID!) { deleteWebhook(id: $id) }"
LIST = "query($t: ID) { webhooks(tenantId: $t) { id tenantId url } }"
ONE = "query($id: ID!) { webhook(id: $id) { id url } }"
DELIVERIES = "query($id: ID!) { webhookDeliveries(webhookId: $id) { totalCount } }"
REDELIVER = "mutation($id: ID!) { redeliverWebhook(deliveryId: $id) { id } }"
URL = "http://127.0.0.1:9/hooks"


class Org:
    def __init__(self, tenant: Tenant, user: User, token: str) -> None:
        self.tenant, self.user, self.token = tenant, user, token


async def organizer(rt: Runtime, name: str) -> Org:
    tenant = await make_tenant(rt, name)
    user = await make_user(rt, f"org@{name.lower()}.test", Role.ORGANIZER, tenant)
    return Org(tenant, user, await token_for(rt, user))


async def create(client: httpx.AsyncClient, token: str, **fields: Any) -> dict[str, Any]:
    values = {"url": URL, "events": ["order.paid"], **fields}
    return (await gql(client, CREATE, {"i": values}, token=token)).data["createWebhook"]


async def test_an_organizer_creates_a_webhook_for_their_tenant(
    client: httpx.AsyncClient, rt: Runtime
):
    org = await organizer(rt, "Laugh")
    # when
    created = await create(
        client,
        org.token,
        events=["order.paid", "refund.completed", "order.paid"],
        description="CRM",
    )
    # then it belongs to their tenant, with a secret shown once
    webhook = created["webhook"]
    assert webhook["tenantId"] == org.tenant.id
    assert webhook["events"] == ["order.paid", "refund.completed"]
    assert webhook["status"] == "ACTIVE" and webhook["description"] == "CRM"
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    listed = (await gql(client, LIST, token=org.token)).data["webhooks"]
    assert listed == [{"id": webhook["id"], "tenantId": org.tenant.id, "url": URL}]
    assert "secret" not in str(
        (await gql(client, ONE, {"id": webhook["id"]}, token=org.token)).data
    )
    async with rt.db.read() as session:
        assert await valid_secrets(session, webhook["id"], utcnow()) == [created["secret"]]


async def test_tenant_scoping_both_ways(client: httpx.AsyncClient, rt: Runtime):
    # given two tenants with a webhook each
    a, b = await organizer(rt, "Alpha"), await organizer(rt, "Beta")
    hook_a = (await create(client, a.token))["webhook"]["id"]
    hook_b = (await create(client, b.token))["webhook"]["id"]
    # then each sees only its own, and the other's answers NOT_FOUND to every operation
    assert [w["id"] for w in (await gql(client, LIST, token=a.token)).data["webhooks"]] == [hook_a]
    assert [w["id"] for w in (await gql(client, LIST, token=b.token)).data["webhooks"]] == [hook_b]
    for org, foreign in ((a, hook_b), (b, hook_a)):
        for query, variables in (
            (ONE, {"id": foreign}),
            (UPDATE, {"id": foreign, "i": {"description": "mine now"}}),
            (ROTATE, {"id": foreign}),
            (DELETE, {"id": foreign}),
            (DELIVERIES, {"id": foreign}),
        ):
            assert (await gql(client, query, variables, token=org.token)).code == "NOT_FOUND"
    assert (await gql(client, LIST, {"t": b.tenant.id}, token=a.token)).code == "NOT_FOUND"
    wrong_tenant = await gql(
        client, CREATE, {"i": {"url": URL, "events": ["*"], "tenantId": b.tenant.id}}, token=a.token
    )
    assert wrong_tenant.code == "NOT_FOUND"
    # and nothing of the other's changed
    assert (await gql(client, ONE, {"id": hook_b}, token=b.token)).data["webhook"]["url"] == URL


async def test_customers_are_forbidden_and_operators_see_everything(
    client: httpx.AsyncClient, rt: Runtime
):
    org = await organizer(rt, "Gamma")
    hook = (await create(client, org.token))["webhook"]["id"]
    customer = await token_for(rt, await make_user(rt, "c@example.com"))
    for query, variables in ((LIST, {}), (ONE, {"id": hook}), (DELETE, {"id": hook})):
        assert (await gql(client, query, variables, token=customer)).code == "FORBIDDEN"
    assert (await gql(client, LIST)).code == "UNAUTHENTICATED"
    # an operator reads the tenant's, and makes a platform-wide one
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    tenant_hooks = (await gql(client, LIST, {"t": org.tenant.id}, token=operator)).data
    assert [w["id"] for w in tenant_hooks["webhooks"]] == [hook]
    platform = (await create(client, operator, events=["*"]))["webhook"]
    assert platform["tenantId"] is None and platform["events"] == ["*"]
    assert [w["id"] for w in (await gql(client, LIST, token=operator)).data["webhooks"]] == [
        platform["id"]
    ]
    # which organizers cannot see
    assert (await gql(client, ONE, {"id": platform["id"]}, token=org.token)).code == "NOT_FOUND"
    # and the operator may manage the tenant's
    updated = await gql(client, UPDATE, {"id": hook, "i": {"enabled": False}}, token=operator)
    assert updated.data["updateWebhook"]["status"] == "DISABLED"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"url": "ftp://example.com/x"}, "url"),
        ({"url": "http://user:pw@127.0.0.1/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": ""}, "url"),
        ({"events": []}, "events"),
        ({"events": ["order.paid", "order.exploded"]}, "events"),
        ({"description": "x" * 201}, "description"),
    ],
)
async def test_invalid_input_names_the_field(
    client: httpx.AsyncClient, rt: Runtime, values: dict[str, Any], field: str
):
    org = await organizer(rt, "Delta")
    result = await gql(
        client, CREATE, {"i": {"url": URL, "events": ["order.paid"], **values}}, token=org.token
    )
    assert result.code == "BAD_USER_INPUT"
    assert result.error["extensions"]["field"] == field
    assert (await gql(client, LIST, token=org.token)).data["webhooks"] == []


@pytest.mark.settings(env="prod")
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "https://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.1.10/hook",
        "http://100.64.0.1/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
    ],
)
async def test_prod_refuses_private_addresses_at_creation(
    client: httpx.AsyncClient, rt: Runtime, url: str
):
    org = await organizer(rt, "Prod")
    hook = (await create(client, org.token, url="https://93.184.215.14/hook"))["webhook"]["id"]
    # when an endpoint points inside the network
    result = await gql(client, CREATE, {"i": {"url": url, "events": ["*"]}}, token=org.token)
    changed = await gql(client, UPDATE, {"id": hook, "i": {"url": url}}, token=org.token)
    # then it is refused, creating and changing alike
    for refused in (result, changed):
        assert refused.code == "BAD_USER_INPUT"
        assert refused.error["extensions"]["field"] == "url"
        assert "cannot receive webhooks" in refused.error["message"]
    assert [w["url"] for w in (await gql(client, LIST, token=org.token)).data["webhooks"]] == [
        "https://93.184.215.14/hook"
    ]


@pytest.mark.settings(webhook_allow_private_addresses=False)
async def test_the_guard_is_a_setting_outside_prod(client: httpx.AsyncClient, rt: Runtime):
    org = await organizer(rt, "Guarded")
    result = await gql(client, CREATE, {"i": {"url": URL, "events": ["*"]}}, token=org.token)
    assert result.code == "BAD_USER_INPUT"
    assert "loopback" in result.error["message"]


async def test_update_changes_what_is_given(client: httpx.AsyncClient, rt: Runtime):
    org = await organizer(rt, "Epsilon")
    hook = (await create(client, org.token, description="old"))["webhook"]["id"]
    result = await gql(
        client,
        UPDATE,
        {"id": hook, "i": {"events": ["*", "order.paid"], "url": "http://127.0.0.1:10/new"}},
        token=org.token,
    )
    assert result.data["updateWebhook"] == {
        "id": hook,
        "url": "http://127.0.0.1:10/new",
        "events": ["*"],
        "description": "old",
        "status": "ACTIVE",
        "disabledReason": None,
    }
    disabled = await gql(client, UPDATE, {"id": hook, "i": {"enabled": False}}, token=org.token)
    assert disabled.data["updateWebhook"]["status"] == "DISABLED"
    assert disabled.data["updateWebhook"]["disabledReason"] == "disabled by user"
    enabled = await gql(client, UPDATE, {"id": hook, "i": {"enabled": True}}, token=org.token)
    assert enabled.data["updateWebhook"]["status"] == "ACTIVE"


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
    client: httpx.AsyncClient, rt: Runtime
):
    org = await organizer(rt, "Zeta")
    created = await create(client, org.token)
    hook, first_secret = created["webhook"]["id"], created["secret"]
    # when the secret is rotated with an hour's grace
    rotated = (await gql(client, ROTATE, {"id": hook, "g": 3600}, token=org.token)).data
    second_secret = rotated["rotateWebhookSecret"]["secret"]
    # then both sign until the grace period ends, the new one first
    assert second_secret != first_secret
    assert rotated["rotateWebhookSecret"]["previousSecretExpiresAt"] is not None
    async with rt.db.read() as session:
        now = utcnow()
        assert await valid_secrets(session, hook, now) == [second_secret, first_secret]
        assert await valid_secrets(session, hook, now + timedelta(hours=2)) == [second_secret]
    # when rotated again with no grace, only the newest signs
    third = (await gql(client, ROTATE, {"id": hook, "g": 0}, token=org.token)).data
    async with rt.db.read() as session:
        assert await valid_secrets(session, hook, utcnow()) == [
            third["rotateWebhookSecret"]["secret"]
        ]
    bad = await gql(client, ROTATE, {"id": hook, "g": -1}, token=org.token)
    assert bad.code == "BAD_USER_INPUT" and bad.error["extensions"]["field"] == "graceSeconds"


async def test_delete_removes_it_and_every_change_is_audited(
    client: httpx.AsyncClient, rt: Runtime
):
    org = await organizer(rt, "Eta")
    hook = (await create(client, org.token))["webhook"]["id"]
    await gql(client, UPDATE, {"id": hook, "i": {"description": "x"}}, token=org.token)
    await gql(client, ROTATE, {"id": hook}, token=org.token)
    assert (await gql(client, DELETE, {"id": hook}, token=org.token)).data == {
        "deleteWebhook": True
    }
    assert (await gql(client, ONE, {"id": hook}, token=org.token)).code == "NOT_FOUND"
    assert (await gql(client, DELETE, {"id": hook}, token=org.token)).code == "NOT_FOUND"
    async with rt.db.read() as session:
        entries = (
            await session.exec(
                select(AuditEntry)
                .where(AuditEntry.target_id == hook)
                .order_by(col(AuditEntry.created_at))
            )
        ).all()
        secrets_left = (await session.exec(select(WebhookSecret))).all()
    assert [e.action for e in entries] == [
        "webhook.create",
        "webhook.update",
        "webhook.rotate_secret",
        "webhook.delete",
    ]
    assert {e.actor_id for e in entries} == {org.user.id}
    assert {e.tenant_id for e in entries} == {org.tenant.id}
    assert all("whsec_" not in str(e.after) for e in entries)
    assert secrets_left == []


async def test_unknown_delivery_answers_not_found(client: httpx.AsyncClient, rt: Runtime):
    org = await organizer(rt, "Theta")
    assert (await gql(client, REDELIVER, {"id": "nope"}, token=org.token)).code == "NOT_FOUND"
