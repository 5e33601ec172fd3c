"""Tenants and tenant scoping: staff of tenant A can neither read nor change tenant B."""

from __future__ import annotations

import httpx

from boxoffice.models.identity import Role, TenantStatus
from boxoffice.runtime import Runtime
from tests.helpers import gql, make_tenant, make_user, token_for

UPDATE = (
    "mutation($id: ID!, $i: UpdateTenantInput!) { updateTenant(id: $id, input: $i) { id name } }"
)
ADD_MEMBER = """mutation($t: ID!, $u: ID!, $r: Role!) {
  addTenantMember(tenantId: $t, userId: $u, role: $r) { tenantId userId role } }"""


async def test_operator_creates_tenant_and_others_cannot(client: httpx.AsyncClient, rt: Runtime):
    operator = await make_user(rt, "op@example.com", Role.OPERATOR)
    customer = await make_user(rt, "cu@example.com")
    create = """mutation($i: CreateTenantInput!) {
      createTenant(input: $i) { id name status currency theme { primary } contact { phone } } }"""
    made = await gql(
        client,
        create,
        {
            "i": {
                "name": "Laugh Lab",
                "theme": {"primary": "#e4572e"},
                "contact": {"phone": "021-1234"},
            }
        },
        token=await token_for(rt, operator),
    )
    tenant = made.data["createTenant"]
    assert tenant["status"] == "ACTIVE" and tenant["currency"] == "CNY"
    assert tenant["theme"]["primary"] == "#e4572e"
    refused = await gql(
        client, create, {"i": {"name": "Mine"}}, token=await token_for(rt, customer)
    )
    assert refused.code == "FORBIDDEN"
    bad = await gql(
        client,
        create,
        {"i": {"name": "X", "theme": {"primary": "red"}}},
        token=await token_for(rt, operator),
    )
    assert bad.code == "BAD_USER_INPUT" and bad.error["extensions"]["field"] == "theme.primary"
    # the audit trail has the creation
    from sqlmodel import select

    from boxoffice.models.identity import AuditEntry

    async with rt.db.read() as session:
        actions = [e.action for e in (await session.exec(select(AuditEntry))).all()]
    assert "tenant.create" in actions


async def test_organizer_of_a_cannot_touch_b(client: httpx.AsyncClient, rt: Runtime):
    # given two tenants and an organizer of A
    a = await make_tenant(rt, "A")
    b = await make_tenant(rt, "B", status=TenantStatus.PENDING)
    organizer = await make_user(rt, "org@a.example", Role.ORGANIZER, a)
    staff_b = await make_user(rt, "gate@b.example", Role.CHECKIN, b)
    token = await token_for(rt, organizer)
    # then A is theirs to change
    own = await gql(client, UPDATE, {"id": a.id, "i": {"name": "A renamed"}}, token=token)
    assert own.data["updateTenant"]["name"] == "A renamed"
    # and B answers NOT_FOUND for reads and writes alike
    assert (
        await gql(client, "query($id: ID!) { tenant(id: $id) { id } }", {"id": b.id}, token=token)
    ).code == "NOT_FOUND"
    assert (
        await gql(client, UPDATE, {"id": b.id, "i": {"name": "pwned"}}, token=token)
    ).code == "NOT_FOUND"
    add = await gql(client, ADD_MEMBER, {"t": b.id, "u": organizer.id, "r": "CHECKIN"}, token=token)
    assert add.code == "NOT_FOUND"
    listed = await gql(client, "{ tenants { id } }", token=token)
    assert [t["id"] for t in listed.data["tenants"]] == [a.id]
    # while B's own staff still see their pending tenant
    seen = await gql(
        client,
        "query($id: ID!) { tenant(id: $id) { id status } }",
        {"id": b.id},
        token=await token_for(rt, staff_b),
    )
    assert seen.data["tenant"]["status"] == "PENDING"


async def test_organizer_adds_gate_staff_but_not_organizers(client: httpx.AsyncClient, rt: Runtime):
    a = await make_tenant(rt, "A")
    organizer = await make_user(rt, "org@a.example", Role.ORGANIZER, a)
    gate = await make_user(rt, "gate@a.example")
    token = await token_for(rt, organizer)
    ok = await gql(client, ADD_MEMBER, {"t": a.id, "u": gate.id, "r": "CHECKIN"}, token=token)
    assert ok.data["addTenantMember"]["role"] == "CHECKIN"
    twice = await gql(client, ADD_MEMBER, {"t": a.id, "u": gate.id, "r": "CHECKIN"}, token=token)
    assert twice.code == "ALREADY_EXISTS"
    promote = await gql(
        client, ADD_MEMBER, {"t": a.id, "u": gate.id, "r": "ORGANIZER"}, token=token
    )
    assert promote.code == "FORBIDDEN"
    # the gate user's next sign-in carries the tenant role
    me = await gql(
        client,
        "{ me { roles memberships { role tenant { id } } } }",
        token=await token_for(rt, gate),
    )
    assert set(me.data["me"]["roles"]) == {"CUSTOMER", "CHECKIN"}
    assert me.data["me"]["memberships"][0]["tenant"]["id"] == a.id


async def test_audit_merchant(client: httpx.AsyncClient, rt: Runtime):
    operator = await make_user(rt, "op@example.com", Role.OPERATOR)
    pending = await make_tenant(rt, "New Club", status=TenantStatus.PENDING)
    token = await token_for(rt, operator)
    audit = """mutation($t: ID!, $a: Boolean!, $o: String) {
      auditMerchant(tenantId: $t, approve: $a, opinion: $o) { id status auditOpinion } }"""
    no_reason = await gql(client, audit, {"t": pending.id, "a": False}, token=token)
    assert (
        no_reason.code == "BAD_USER_INPUT" and no_reason.error["extensions"]["field"] == "opinion"
    )
    done = await gql(
        client, audit, {"t": pending.id, "a": True, "o": "licence checked"}, token=token
    )
    assert done.data["auditMerchant"] == {
        "id": pending.id,
        "status": "ACTIVE",
        "auditOpinion": "licence checked",
    }
    again = await gql(client, audit, {"t": pending.id, "a": True}, token=token)
    assert again.code == "BAD_USER_INPUT"


async def test_merchant_onboarding_apply_then_audit(client: httpx.AsyncClient, rt: Runtime):
    from sqlmodel import select

    from boxoffice.models.outbox import OutboxEvent

    # given a user who applies to sell
    applicant = await make_user(rt, "founder@newclub.example")
    token = await token_for(rt, applicant)
    applied = await gql(
        client,
        'mutation { applyForTenant(input: {name: "New Club", contact: {phone: "021-555"}}) { id status } }',
        token=token,
    )
    tenant = applied.data["applyForTenant"]
    assert tenant["status"] == "PENDING"
    twice = await gql(
        client, 'mutation { applyForTenant(input: {name: "Again"}) { id } }', token=token
    )
    assert twice.code == "ALREADY_EXISTS"
    # the applicant is its organizer (after their next sign-in) and sees it; the public does not
    assert (
        await gql(
            client,
            "query($id: ID!) { tenant(id: $id) { status } }",
            {"id": tenant["id"]},
            token=await token_for(rt, applicant),
        )
    ).data["tenant"]["status"] == "PENDING"
    assert (
        await gql(client, "query($id: ID!) { tenant(id: $id) { id } }", {"id": tenant["id"]})
    ).code == "NOT_FOUND"
    # when an operator approves, the tenant is told through the outbox
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    done = await gql(
        client,
        'mutation($t: ID!) { auditMerchant(tenantId: $t, approve: true, opinion: "ok") { status } }',
        {"t": tenant["id"]},
        token=operator,
    )
    assert done.data["auditMerchant"]["status"] == "ACTIVE"
    async with rt.db.read() as session:
        events = (
            await session.exec(select(OutboxEvent).where(OutboxEvent.topic == "merchant.audited"))
        ).all()
    assert [e.payload["resource"]["status"] for e in events] == ["ACTIVE"]
