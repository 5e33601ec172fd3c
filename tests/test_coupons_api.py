"""Coupons and promotions over GraphQL: the whole path a client takes (create, claim, see
what fits a hold, order with it), the batch job's progress, scoping and error codes."""

from __future__ import annotations

from typing import Any

import httpx

from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.services.coupon_issuing import issue_consumer
from boxoffice.services.outbox import dispatch_once
from tests.coupon_factories import assert_order_json_adds_up, make_customers
from tests.helpers import gql, make_tenant, make_user, token_for
from tests.order_factories import on_sale

COUPON_FIELDS = """id code name kind value amountOff { amount } percentOff
  maxDiscount { amount } minSpend { amount currency } scope tenantId eventId tierId
  totalQuantity claimed remaining perUserLimit stackable status"""
USER_COUPON_FIELDS = """id status source orderId coupon { id name } discount { amount }
  promotionDiscount { amount } orderTotal { amount }"""
ORDER_FIELDS = """id status subtotal { amount } promotionDiscount { amount }
  couponDiscount { amount } discount { amount } total { amount } userCouponId promotionId
  items { price { amount } }"""


async def create_coupon(client: httpx.AsyncClient, token: str, **fields: Any) -> dict[str, Any]:
    made = await gql(
        client,
        f"mutation($i: CreateCouponInput!) {{ createCoupon(input: $i) {{ {COUPON_FIELDS} }} }}",
        {
            "i": {
                "name": "API coupon",
                "kind": "FIXED",
                "value": "30.00",
                "totalQuantity": 5,
                **fields,
            }
        },
        token=token,
    )
    return made.data["createCoupon"]


async def test_from_coupon_to_order(client: httpx.AsyncClient, rt: Runtime):
    # given an organizer's sale with 满300减50, a 10 % coupon (cap 60), and a customer
    sale = await on_sale(rt)
    organizer = await token_for(
        rt, await make_user(rt, "org@example.com", Role.ORGANIZER, sale.tenant)
    )
    buyer = await token_for(rt, await make_user(rt, "buyer@example.com"))
    promotion = await gql(
        client,
        "mutation($i: CreatePromotionInput!) { createPromotion(input: $i) "
        "{ id kind threshold { amount } amountOff { amount } repeat status } }",
        {
            "i": {
                "eventId": sale.event.id,
                "name": "满300减50",
                "kind": "THRESHOLD",
                "threshold": "300",
                "amountOff": "50",
            }
        },
        token=organizer,
    )
    assert promotion.data["createPromotion"]["threshold"] == {"amount": "300.00"}
    coupon = await create_coupon(
        client,
        organizer,
        kind="PERCENT",
        value="10",
        maxDiscount="60",
        eventId=sale.event.id,
    )
    assert (coupon["scope"], coupon["value"], coupon["percentOff"]) == ("EVENT", "10.00", "10.00")
    assert coupon["maxDiscount"] == {"amount": "60.00"}
    assert coupon["minSpend"] == {"amount": "0.00", "currency": "CNY"}
    # when the customer claims it, holds three GA tickets and asks what fits
    claim = await gql(
        client,
        f"mutation($c: ID!) {{ claimCoupon(couponId: $c) {{ {USER_COUPON_FIELDS} }} }}",
        {"c": coupon["id"]},
        token=buyer,
    )
    mine = claim.data["claimCoupon"]
    assert (mine["status"], mine["source"], mine["discount"]) == ("UNUSED", "CLAIM", None)
    hold = await gql(
        client,
        "mutation($i: CreateHoldInput!) { createHold(input: $i) { token total { amount } } }",
        {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 3}},
        token=buyer,
    )
    token = hold.data["createHold"]["token"]
    offers = await gql(
        client,
        f"query($h: String!) {{ availableCoupons(holdToken: $h) {{ {USER_COUPON_FIELDS} }} }}",
        {"h": token},
        token=buyer,
    )
    # then it would take 49.00 off what is left after the promotion (10 % of 490.00)
    (offer,) = offers.data["availableCoupons"]
    assert offer["id"] == mine["id"]
    assert (offer["discount"], offer["promotionDiscount"], offer["orderTotal"]) == (
        {"amount": "49.00"},
        {"amount": "50.00"},
        {"amount": "441.00"},
    )
    # and the order charges exactly that
    ordered = await gql(
        client,
        f"mutation($i: CreateOrderInput!) {{ createOrder(input: $i) {{ {ORDER_FIELDS} }} }}",
        {"i": {"holdToken": token, "idempotencyKey": "api-1", "userCouponId": mine["id"]}},
        token=buyer,
    )
    order = ordered.data["createOrder"]
    assert_order_json_adds_up(order)
    assert (order["subtotal"], order["promotionDiscount"], order["couponDiscount"]) == (
        {"amount": "540.00"},
        {"amount": "50.00"},
        {"amount": "49.00"},
    )
    assert order["total"] == {"amount": "441.00"}
    assert order["userCouponId"] == mine["id"]
    assert order["promotionId"] == promotion.data["createPromotion"]["id"]
    used = await gql(
        client,
        f"{{ myCoupons(status: USED) {{ {USER_COUPON_FIELDS} }} }}",
        token=buyer,
    )
    assert [(c["id"], c["orderId"]) for c in used.data["myCoupons"]] == [(mine["id"], order["id"])]
    unused = await gql(client, "{ myCoupons(status: UNUSED) { id } }", token=buyer)
    assert unused.data["myCoupons"] == []


async def test_claim_refusals_carry_code_status_and_reason(client: httpx.AsyncClient, rt: Runtime):
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    coupon = await create_coupon(client, operator, totalQuantity=1, code="ONLY-ONE")
    first = await token_for(rt, await make_user(rt, "first@example.com"))
    second = await token_for(rt, await make_user(rt, "second@example.com"))
    by_code = "mutation($c: String!) { claimCouponByCode(code: $c) { id coupon { id code } } }"
    won = await gql(client, by_code, {"c": "only-one"}, token=first)
    assert won.data["claimCouponByCode"]["coupon"] == {"id": coupon["id"], "code": None}
    lost = await gql(client, by_code, {"c": "ONLY-ONE"}, token=second)
    assert lost.code == "COUPON_UNAVAILABLE"
    assert (lost.error["extensions"]["status"], lost.error["extensions"]["reason"]) == (
        4201,
        "SOLD_OUT",
    )
    again = await gql(client, by_code, {"c": "ONLY-ONE"}, token=first)
    assert again.error["extensions"]["reason"] == "ALREADY_CLAIMED"
    anonymous = await gql(client, by_code, {"c": "ONLY-ONE"})
    assert anonymous.code == "UNAUTHENTICATED"


async def test_staff_see_codes_and_lists_customers_do_not(client: httpx.AsyncClient, rt: Runtime):
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    coupon = await create_coupon(client, operator)
    buyer = await token_for(rt, await make_user(rt, "buyer@example.com"))
    query = "query($id: ID!) { coupon(id: $id) { id code remaining } }"
    assert (await gql(client, query, {"id": coupon["id"]}, token=operator)).data["coupon"][
        "code"
    ] == coupon["code"]
    public = (await gql(client, query, {"id": coupon["id"]}, token=buyer)).data["coupon"]
    assert (public["code"], public["remaining"]) == (None, 5)
    listed = await gql(
        client, "{ coupons(first: 10) { totalCount edges { node { id code } } } }", token=operator
    )
    assert listed.data["coupons"]["totalCount"] == 1
    assert listed.data["coupons"]["edges"][0]["node"] == {
        "id": coupon["id"],
        "code": coupon["code"],
    }
    refused = await gql(client, "{ coupons { totalCount } }", token=buyer)
    assert refused.code == "FORBIDDEN"


async def test_organizers_cannot_touch_another_tenants_coupons(
    client: httpx.AsyncClient, rt: Runtime
):
    ours, theirs = await make_tenant(rt, "Ours"), await make_tenant(rt, "Theirs")
    organizer = await token_for(rt, await make_user(rt, "o@example.com", Role.ORGANIZER, ours))
    other = await token_for(rt, await make_user(rt, "t@example.com", Role.ORGANIZER, theirs))
    coupon = await create_coupon(client, organizer)
    assert (coupon["scope"], coupon["tenantId"]) == ("TENANT", ours.id)
    for mutation in ("pauseCoupon", "endCoupon"):
        result = await gql(
            client,
            f"mutation($id: ID!) {{ {mutation}(id: $id) {{ id }} }}",
            {"id": coupon["id"]},
            token=other,
        )
        assert result.code == "NOT_FOUND"
    foreign = await gql(
        client,
        "mutation($i: CreateCouponInput!) { createCoupon(input: $i) { id } }",
        {
            "i": {
                "name": "x",
                "kind": "FIXED",
                "value": "1",
                "totalQuantity": 1,
                "tenantId": ours.id,
            }
        },
        token=other,
    )
    assert (foreign.code, foreign.error["extensions"]["field"]) == ("NOT_FOUND", "tenantId")
    paused = await gql(
        client,
        "mutation($id: ID!) { pauseCoupon(id: $id) { status } }",
        {"id": coupon["id"]},
        token=organizer,
    )
    assert paused.data["pauseCoupon"]["status"] == "PAUSED"
    bad = await gql(
        client,
        "mutation($i: CreateCouponInput!) { createCoupon(input: $i) { id } }",
        {"i": {"name": "x", "kind": "PERCENT", "value": "150", "totalQuantity": 1}},
        token=organizer,
    )
    assert (bad.code, bad.error["extensions"]["field"]) == ("BAD_USER_INPUT", "value")


async def test_issue_and_follow_the_batch_job(client: httpx.AsyncClient, rt: Runtime):
    # given an operator's coupon of 2 and three customers (one id unknown)
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    coupon = await create_coupon(client, operator, totalQuantity=2)
    people = [p.id for p in await make_customers(rt, 3)]
    job_fields = (
        "id status total succeeded failed processed progress couponId results { userId ok reason }"
    )
    # when it is issued to them
    started = await gql(
        client,
        f"mutation($c: ID!, $u: [ID!]!) {{ issueCoupons(couponId: $c, userIds: $u) {{ {job_fields} }} }}",
        {"c": coupon["id"], "u": [*people, "nobody"]},
        token=operator,
    )
    job = started.data["issueCoupons"]
    assert (job["status"], job["total"], job["processed"], job["results"]) == ("PENDING", 4, 0, [])
    assert job["couponId"] == coupon["id"]
    # and the worker runs it
    await dispatch_once(rt, issue_consumer())
    # then the job shows its progress and a result per person
    done = await gql(
        client,
        f"query($id: ID!) {{ batchJob(id: $id) {{ {job_fields} }} }}",
        {"id": job["id"]},
        token=operator,
    )
    finished = done.data["batchJob"]
    assert (finished["status"], finished["succeeded"], finished["failed"]) == ("COMPLETED", 2, 2)
    assert finished["progress"] == 1.0
    assert finished["results"] == [
        {"userId": people[0], "ok": True, "reason": None},
        {"userId": people[1], "ok": True, "reason": None},
        {"userId": people[2], "ok": False, "reason": "SOLD_OUT"},
        {"userId": "nobody", "ok": False, "reason": "USER_NOT_FOUND"},
    ]
    failed = await gql(
        client,
        "query($id: ID!) { batchJob(id: $id) { results(failedOnly: true, first: 1) { userId } } }",
        {"id": job["id"]},
        token=operator,
    )
    assert failed.data["batchJob"]["results"] == [{"userId": people[2]}]
    customer = await token_for(rt, await make_user(rt, "c@example.com"))
    hidden = await gql(
        client, "query($id: ID!) { batchJob(id: $id) { id } }", {"id": job["id"]}, token=customer
    )
    assert hidden.code == "FORBIDDEN"


async def test_promotions_are_listed_for_an_event(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    made = await gql(
        client,
        "mutation($i: CreatePromotionInput!) { createPromotion(input: $i) { id } }",
        {
            "i": {
                "eventId": sale.event.id,
                "name": "九折",
                "kind": "PERCENT",
                "percentOff": "10",
                "maxDiscount": "100",
            }
        },
        token=operator,
    )
    promotion_id = made.data["createPromotion"]["id"]
    listed = await gql(
        client,
        "query($e: ID!) { promotions(eventId: $e) { id name percentOff maxDiscount { amount } } }",
        {"e": sale.event.id},
    )
    assert listed.data["promotions"] == [
        {
            "id": promotion_id,
            "name": "九折",
            "percentOff": "10.00",
            "maxDiscount": {"amount": "100.00"},
        }
    ]
    ended = await gql(
        client,
        "mutation($id: ID!) { endPromotion(id: $id) { status } }",
        {"id": promotion_id},
        token=operator,
    )
    assert ended.data["endPromotion"]["status"] == "ENDED"
    assert (
        await gql(client, "query($e: ID!) { promotions(eventId: $e) { id } }", {"e": sale.event.id})
    ).data["promotions"] == []
