"""Refunds and the waitlist over GraphQL: what buyers, waiting people and organizers see and
do, with the contract's names and error codes."""

from __future__ import annotations

import httpx

from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.services.event_refunds import event_refunds_consumer
from boxoffice.services.outbox import dispatch_once
from tests.helpers import gql, make_tenant, make_user, token_for
from tests.order_factories import on_sale
from tests.ticket_factories import ticketed_order

REFUND_FIELDS = """
  id refundNo status source amount { amount currency } fee { amount } cost { amount }
  units reason opinion method order { id status refunded { amount } }
  tickets { id status }
"""

REQUEST = f"""
mutation($o: ID!, $t: [ID!], $r: String) {{
  requestRefund(orderId: $o, ticketIds: $t, reason: $r) {{ {REFUND_FIELDS} }}
}}
"""

REVIEW = f"""
mutation($id: ID!, $ok: Boolean!, $note: String) {{
  reviewRefund(refundId: $id, approve: $ok, opinion: $note) {{ {REFUND_FIELDS} }}
}}
"""

WAITLIST_FIELDS = "id status position offerHoldToken offerExpiresAt quantity tierId"


async def test_a_buyer_asks_for_a_ticket_back_and_the_organizer_approves(
    rt: Runtime, client: httpx.AsyncClient
):
    # given a paid order of two seats, a 5 % fee set by the organizer
    sale = await on_sale(rt)
    buyer = await make_user(rt, "buyer@example.com")
    boss = await make_user(rt, "boss@club.test", Role.ORGANIZER, sale.tenant)
    order, tickets = await ticketed_order(rt, buyer, sale)
    token, boss_token = await token_for(rt, buyer), await token_for(rt, boss)
    policy = await gql(
        client,
        "mutation($i: SetRefundPolicyInput!) { setRefundPolicy(input: $i) "
        "{ source refundable deadlineHours feeTiers { hoursBefore percent fixed { amount } } } }",
        {"i": {"deadlineHours": 24, "feeTiers": [{"hoursBefore": 0, "percent": "5"}]}},
        token=boss_token,
    )
    assert policy.data["setRefundPolicy"] == {
        "source": "TENANT",
        "refundable": True,
        "deadlineHours": 24,
        "feeTiers": [{"hoursBefore": 0, "percent": "5.00", "fixed": {"amount": "0.00"}}],
    }
    # when the buyer reads the quote and asks for one ticket back
    quote = await gql(
        client,
        "query($o: ID!, $t: [ID!]) { refundQuote(orderId: $o, ticketIds: $t) "
        "{ units cost { amount } fee { amount } amount { amount } deadline } }",
        {"o": order.id, "t": [tickets[0].id]},
        token=token,
    )
    assert quote.data["refundQuote"]["fee"] == {"amount": "19.00"}
    asked = await gql(
        client, REQUEST, {"o": order.id, "t": [tickets[0].id], "r": "ill"}, token=token
    )
    refund = asked.data["requestRefund"]
    assert (refund["status"], refund["amount"], refund["fee"]) == (
        "PENDING",
        {"amount": "361.00", "currency": "CNY"},
        {"amount": "19.00"},
    )
    assert refund["order"]["status"] == "REFUNDING"
    # and the organizer approves it
    approved = await gql(
        client, REVIEW, {"id": refund["id"], "ok": True, "note": "get well"}, token=boss_token
    )
    # then the money went back and the ticket is revoked
    done = approved.data["reviewRefund"]
    assert (done["status"], done["opinion"], done["method"]) == ("COMPLETED", "get well", "SANDBOX")
    assert done["tickets"] == [{"id": tickets[0].id, "status": "REVOKED"}]
    assert done["order"] == {
        "id": order.id,
        "status": "PARTIALLY_REFUNDED",
        "refunded": {"amount": "361.00"},
    }
    # and both sides can list it
    mine = await gql(client, "{ myRefunds { totalCount nodes { id status } } }", token=token)
    assert mine.data["myRefunds"] == {
        "totalCount": 1,
        "nodes": [{"id": refund["id"], "status": "COMPLETED"}],
    }
    listed = await gql(
        client,
        "query($t: ID) { refunds(tenantId: $t, status: COMPLETED) { totalCount nodes { refundNo } } }",
        {"t": sale.tenant.id},
        token=boss_token,
    )
    assert listed.data["refunds"]["nodes"] == [{"refundNo": refund["refundNo"]}]


async def test_refund_errors_carry_the_contract_codes(rt: Runtime, client: httpx.AsyncClient):
    # given a paid order, another tenant's organizer, and a pending refund
    sale = await on_sale(rt)
    buyer = await make_user(rt, "buyer@example.com")
    stranger = await make_user(rt, "other@club.test", Role.ORGANIZER, await make_tenant(rt, "X"))
    order, tickets = await ticketed_order(rt, buyer, sale)
    token = await token_for(rt, buyer)
    unknown = await gql(client, REQUEST, {"o": order.id, "t": ["nope"]}, token=token)
    assert (unknown.code, unknown.error["extensions"]["field"]) == ("BAD_USER_INPUT", "ticketIds")
    refund = (await gql(client, REQUEST, {"o": order.id}, token=token)).data["requestRefund"]
    # then: a second request, a customer reviewing, another tenant's organizer reviewing
    again = await gql(client, REQUEST, {"o": order.id, "t": [tickets[0].id]}, token=token)
    assert again.code == "ORDER_STATE_INVALID"
    assert again.error["extensions"]["reason"] == "REFUND_IN_PROGRESS"
    own = await gql(client, REVIEW, {"id": refund["id"], "ok": True}, token=token)
    assert own.code == "FORBIDDEN"
    other = await gql(
        client, REVIEW, {"id": refund["id"], "ok": True}, token=await token_for(rt, stranger)
    )
    assert other.code == "NOT_FOUND"
    seen = await gql(
        client,
        "query($id: ID!) { refund(id: $id) { id } }",
        {"id": refund["id"]},
        token=await token_for(rt, stranger),
    )
    assert seen.data["refund"] is None


async def test_waiting_for_a_sold_out_tier_over_graphql(rt: Runtime, client: httpx.AsyncClient):
    # given a sold-out general-admission tier of one
    sale = await on_sale(rt, ga_capacity=1)
    buyer = await make_user(rt, "buyer@example.com")
    waiter = await make_user(rt, "waiter@example.com")
    boss = await make_user(rt, "boss@club.test", Role.ORGANIZER, sale.tenant)
    order, _ = await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    token, boss_token = await token_for(rt, waiter), await token_for(rt, boss)
    # when someone joins its waitlist
    joined = await gql(
        client,
        f"mutation($s: ID!, $t: ID!) {{ joinWaitlist(sessionId: $s, tierId: $t, quantity: 1) "
        f"{{ {WAITLIST_FIELDS} }} }}",
        {"s": sale.session.id, "t": sale.ga.id},
        token=token,
    )
    entry = joined.data["joinWaitlist"]
    assert (entry["status"], entry["position"], entry["offerHoldToken"]) == ("WAITING", 1, None)
    # and the ticket is refunded
    refund = (await gql(client, REQUEST, {"o": order.id}, token=await token_for(rt, buyer))).data[
        "requestRefund"
    ]
    await gql(client, REVIEW, {"id": refund["id"], "ok": True}, token=boss_token)
    # then the waiting person holds an offer, and orders with its token
    mine = await gql(client, f"{{ myWaitlist {{ {WAITLIST_FIELDS} }} }}", token=token)
    [offered] = mine.data["myWaitlist"]
    assert offered["status"] == "OFFERED" and offered["offerHoldToken"]
    staff_view = await gql(
        client,
        "query($t: ID!) { waitlist(tierId: $t) { totalCount nodes { id status offerHoldToken } } }",
        {"t": sale.ga.id},
        token=boss_token,
    )
    assert staff_view.data["waitlist"]["nodes"] == [
        {"id": entry["id"], "status": "OFFERED", "offerHoldToken": None}
    ]
    public = await gql(
        client,
        "mutation($s: ID!, $t: ID!) { createHold(input: {sessionId: $s, tierId: $t, quantity: 1}) "
        "{ token } }",
        {"s": sale.session.id, "t": sale.ga.id},
        token=await token_for(rt, await make_user(rt, "public@example.com")),
    )
    assert public.code == "SOLD_OUT"
    placed = await gql(
        client,
        'mutation($h: String!) { createOrder(input: {holdToken: $h, idempotencyKey: "w-1"}) '
        "{ status total { amount } } }",
        {"h": offered["offerHoldToken"]},
        token=token,
    )
    assert placed.data["createOrder"] == {
        "status": "PENDING_PAYMENT",
        "total": {"amount": "180.00"},
    }


async def test_leaving_the_waitlist_over_graphql(rt: Runtime, client: httpx.AsyncClient):
    sale = await on_sale(rt, ga_capacity=1)
    buyer = await make_user(rt, "buyer@example.com")
    waiter = await make_user(rt, "waiter@example.com")
    await ticketed_order(rt, buyer, sale, tier_id=sale.ga.id, quantity=1)
    token = await token_for(rt, waiter)
    join = (
        "mutation($s: ID!, $t: ID!) { joinWaitlist(sessionId: $s, tierId: $t, quantity: 1) { id } }"
    )
    variables = {"s": sale.session.id, "t": sale.ga.id}
    entry_id = (await gql(client, join, variables, token=token)).data["joinWaitlist"]["id"]
    twice = await gql(client, join, variables, token=token)
    assert twice.code == "ALREADY_EXISTS"
    left = await gql(
        client, "mutation($id: ID!) { leaveWaitlist(id: $id) }", {"id": entry_id}, token=token
    )
    assert left.data["leaveWaitlist"] is True
    assert (await gql(client, "{ myWaitlist { id } }", token=token)).data["myWaitlist"] == []
    seated_open = await gql(client, join, {"s": sale.session.id, "t": sale.seated.id}, token=token)
    assert seated_open.code == "BAD_USER_INPUT"
    assert seated_open.error["extensions"]["reason"] == "NOT_SOLD_OUT"


async def test_the_organizer_follows_a_cancelled_events_refunds(
    rt: Runtime, client: httpx.AsyncClient
):
    sale = await on_sale(rt)
    buyer = await make_user(rt, "buyer@example.com")
    boss = await make_user(rt, "boss@club.test", Role.ORGANIZER, sale.tenant)
    order, _tickets = await ticketed_order(rt, buyer, sale)
    boss_token = await token_for(rt, boss)
    progress = (
        "query($e: ID!) { eventRefundProgress(eventId: $e) "
        "{ status total completed failed inProgress progress refunded { amount } } }"
    )
    before = await gql(client, progress, {"e": sale.event.id}, token=boss_token)
    assert before.data["eventRefundProgress"] is None
    cancelled = await gql(
        client,
        'mutation($e: ID!) { cancelEvent(id: $e, reason: "flood") { status } }',
        {"e": sale.event.id},
        token=boss_token,
    )
    assert cancelled.data["cancelEvent"]["status"] == "CANCELLED"
    await dispatch_once(rt, event_refunds_consumer())
    after = await gql(client, progress, {"e": sale.event.id}, token=boss_token)
    assert after.data["eventRefundProgress"] == {
        "status": "COMPLETED",
        "total": 1,
        "completed": 1,
        "failed": 0,
        "inProgress": 0,
        "progress": 1.0,
        "refunded": {"amount": f"{order.total_minor / 100:.2f}"},
    }
    customer = await gql(client, progress, {"e": sale.event.id}, token=await token_for(rt, buyer))
    assert customer.code == "FORBIDDEN"
