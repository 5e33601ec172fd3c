"""The back office: box office sales, merchant order lists, sales figures, the live
dashboard and the audit trail."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.models.events import TicketTier
from boxoffice.models.identity import AuditEntry, Role
from boxoffice.models.orders import Payment
from boxoffice.runtime import Runtime
from boxoffice.services import orders as order_service
from boxoffice.services.outbox import dispatch_once
from tests.conftest import LiveServer
from tests.helpers import gql, make_tenant, make_user, token_for, viewer_for
from tests.order_factories import hold_for, on_sale, order_for, pay
from tests.ws import graphql_ws

SALE = """mutation($i: BoxOfficeSaleInput!) { boxOfficeSale(input: $i) {
  id status channel total { amount } contact { name phone } items { seatId price { amount } } } }"""
STATS = """query($t: ID, $p: StatsPeriod!) { salesStats(tenantId: $t, period: $p) {
  orders ticketsSold grossRevenue { amount } refunded { amount } net { amount } newCustomers
  sessions { sessionId tiers { name sold capacity rate } } } }"""


async def test_box_office_sells_paid_at_once(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    organizer = await make_user(rt, "org@club.example", Role.ORGANIZER, sale.tenant)
    token = await token_for(rt, organizer)
    sold = await gql(
        client,
        SALE,
        {
            "i": {
                "sessionId": sale.session.id,
                "seatIds": sale.seat_ids[:2],
                "buyer": {"name": "Walk-in", "phone": "13900000000"},
                "paymentMethod": "CASH",
            }
        },
        token=token,
    )
    order = sold.data["boxOfficeSale"]
    assert order["status"] == "PAID"
    assert order["channel"] == "BOX_OFFICE"
    assert order["total"] == {"amount": "760.00"}
    assert order["contact"] == {"name": "Walk-in", "phone": "+8613900000000"}
    snap = await rt.backends.ledger.snapshot(
        sale.session.id, now_ms=int(utcnow().timestamp() * 1000)
    )
    assert [snap.seats[s].value for s in sale.seat_ids[:2]] == ["S", "S"]
    async with rt.db.read() as session:
        payment = (await session.exec(select(Payment).where(Payment.order_id == order["id"]))).one()
        audited = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.action == "order.box_office_sale")
            )
        ).all()
    assert payment.channel == "BOX_OFFICE"
    assert payment.provider_trade_no == "CASH"
    assert len(audited) == 1
    # outsiders cannot sell
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    other_org = await token_for(
        rt, await make_user(rt, "org@other.example", Role.ORGANIZER, await make_tenant(rt, "Other"))
    )
    args = {
        "i": {
            "sessionId": sale.session.id,
            "tierId": sale.ga.id,
            "quantity": 1,
            "paymentMethod": "CARD",
        }
    }
    assert (await gql(client, SALE, args, token=fan)).code == "FORBIDDEN"
    assert (await gql(client, SALE, args, token=other_org)).code == "NOT_FOUND"


async def test_box_office_cannot_oversell_against_online_holds(rt: Runtime):
    # given ten general-admission tickets, twelve online fans and the counter selling at once
    sale = await on_sale(rt, ga_capacity=10)
    organizer = await make_user(rt, "org@club.example", Role.ORGANIZER, sale.tenant)
    staff = await viewer_for(rt, organizer)
    fans = [await make_user(rt, f"fan{i}@example.com") for i in range(12)]
    from boxoffice.services import box_office

    async def online(user) -> int:  # type: ignore[no-untyped-def]
        try:
            await order_for(
                rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
            )
            return 1
        except Exception:
            return 0

    async def counter() -> int:
        try:
            await box_office.sell(
                deps=rt.order_deps,
                viewer=staff,
                session_id=sale.session.id,
                tier_id=sale.ga.id,
                quantity=2,
                seat_ids=None,
                buyer_name=None,
                buyer_phone=None,
                payment_method=box_office.BoxOfficePayment.CASH,
            )
            return 2
        except Exception:
            return 0

    results = await asyncio.gather(*(online(f) for f in fans), *(counter() for _ in range(4)))
    # then never more than ten are sold or pending, in the database and in the ledger
    assert sum(results) == 10
    async with rt.db.read() as session:
        tier = await session.get(TicketTier, sale.ga.id)
    assert tier is not None
    assert tier.reserved == 10
    counts = await rt.backends.ledger.counts(sale.session.id)
    assert counts[sale.ga.id].free == 0


async def test_merchant_orders_filters_masks_and_scopes(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    buyer = await make_user(rt, "buyer@example.com")
    paid = await pay(
        rt,
        buyer,
        await order_for(
            rt,
            buyer,
            await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=1),
            contact_phone="13700001111",
        ),
    )
    await order_for(
        rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=2)
    )
    organizer = await token_for(
        rt, await make_user(rt, "org@club.example", Role.ORGANIZER, sale.tenant)
    )
    gate = await token_for(rt, await make_user(rt, "gate@club.example", Role.CHECKIN, sale.tenant))
    query = """query($f: OrderFilter) { merchantOrders(filter: $f) { totalCount
      edges { node { id status contact { phone } } } } }"""
    everything = (await gql(client, query, {}, token=organizer)).data["merchantOrders"]
    assert everything["totalCount"] == 2
    only_paid = (await gql(client, query, {"f": {"status": "PAID"}}, token=organizer)).data[
        "merchantOrders"
    ]
    assert [e["node"]["id"] for e in only_paid["edges"]] == [paid.id]
    by_phone = (
        await gql(client, query, {"f": {"buyerPhone": "13700001111"}}, token=organizer)
    ).data["merchantOrders"]
    assert by_phone["totalCount"] == 1
    assert by_phone["edges"][0]["node"]["contact"]["phone"] == "+8613700001111"
    masked = (await gql(client, query, {"f": {"buyerPhone": "13700001111"}}, token=gate)).data[
        "merchantOrders"
    ]
    assert masked["edges"][0]["node"]["contact"]["phone"] == "+86****1111"
    outsider = await token_for(
        rt, await make_user(rt, "org@other.example", Role.ORGANIZER, await make_tenant(rt, "Other"))
    )
    assert (
        await gql(client, query, {"f": {"tenantId": sale.tenant.id}}, token=outsider)
    ).code == "NOT_FOUND"
    fan = await token_for(rt, buyer)
    assert (
        await gql(client, query, {"f": {"tenantId": sale.tenant.id}}, token=fan)
    ).code == "FORBIDDEN"


async def test_sales_stats_equal_what_was_sold(client: httpx.AsyncClient, rt: Runtime):
    # given two paid online orders, a box office sale, an unpaid and a cancelled order
    sale = await on_sale(rt)
    a, b = await make_user(rt, "a@example.com"), await make_user(rt, "b@example.com")
    await pay(
        rt,
        a,
        await order_for(rt, a, await hold_for(rt, a, sale.session, tier_id=sale.ga.id, quantity=2)),
    )
    await pay(
        rt,
        b,
        await order_for(rt, b, await hold_for(rt, b, sale.session, seat_ids=sale.seat_ids[:1])),
    )
    await order_for(rt, b, await hold_for(rt, b, sale.session, tier_id=sale.ga.id, quantity=1))
    cancelled = await order_for(
        rt, a, await hold_for(rt, a, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    await order_service.cancel_order(
        deps=rt.order_deps, viewer=await viewer_for(rt, a), order_id=cancelled.id, reason=None
    )
    organizer = await make_user(rt, "org@club.example", Role.ORGANIZER, sale.tenant)
    token = await token_for(rt, organizer)
    await gql(
        client,
        SALE,
        {
            "i": {
                "sessionId": sale.session.id,
                "tierId": sale.ga.id,
                "quantity": 3,
                "paymentMethod": "TRANSFER",
            }
        },
        token=token,
    )
    # then today's figures are exactly those sales
    stats = (await gql(client, STATS, {"t": sale.tenant.id, "p": "TODAY"}, token=token)).data[
        "salesStats"
    ]
    assert stats["orders"] == 3
    assert stats["ticketsSold"] == 6
    assert stats["grossRevenue"] == {"amount": f"{2 * 180 + 380 + 3 * 180:.2f}"}
    assert stats["refunded"] == {"amount": "0.00"}
    assert stats["net"] == stats["grossRevenue"]
    assert stats["newCustomers"] == 2
    tiers = {t["name"]: t for t in stats["sessions"][0]["tiers"]}
    assert (tiers["GA"]["sold"], tiers["GA"]["capacity"]) == (5, 10)
    assert tiers["GA"]["rate"] == 0.5
    assert tiers["Seated"]["sold"] == 1
    assert (await gql(client, STATS, {"t": sale.tenant.id, "p": "ALL_TIME"}, token=token)).data[
        "salesStats"
    ]["orders"] == 3
    assert (await gql(client, STATS, {"p": "TODAY"}, token=token)).code == "FORBIDDEN"
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    assert (await gql(client, STATS, {"p": "TODAY"}, token=operator)).data["salesStats"][
        "orders"
    ] == 3
    custom = await gql(client, "query { salesStats(period: CUSTOM) { orders } }", token=operator)
    assert custom.code == "BAD_USER_INPUT"


async def test_the_dashboard_moves_when_an_order_is_paid(live_server: LiveServer, rt: Runtime):
    from boxoffice.jobs import CONSUMERS

    sale = await on_sale(rt)
    organizer = await make_user(rt, "org@club.example", Role.ORGANIZER, sale.tenant)
    buyer = await make_user(rt, "buyer@example.com")
    query = "subscription($t: ID!) { salesDashboard(tenantId: $t) { orders ticketsSold grossRevenue { amount } } }"
    dashboard = next(c for c in CONSUMERS if c.name == "sales-dashboard")
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init({"Authorization": f"Bearer {await token_for(rt, organizer)}"})
        op = await ws.subscribe(query, {"t": sale.tenant.id})
        assert (await ws.next_payload(op))["data"]["salesDashboard"]["orders"] == 0
        await pay(
            rt,
            buyer,
            await order_for(
                rt, buyer, await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=2)
            ),
        )
        while await dispatch_once(rt, dashboard):  # what the outbox job does every half second
            pass
        moved = (await ws.next_payload(op))["data"]["salesDashboard"]
    assert moved == {"orders": 1, "ticketsSold": 2, "grossRevenue": {"amount": "360.00"}}


@pytest.mark.parametrize("backend", ["embedded"])
async def test_admin_mutations_leave_audit_entries(client: httpx.AsyncClient, rt: Runtime):
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    tenant = (
        await gql(
            client, 'mutation { createTenant(input: {name: "Audited"}) { id } }', token=operator
        )
    ).data["createTenant"]
    user = await make_user(rt, "someone@example.com")
    await gql(
        client,
        "mutation($u: ID!) { freezeUser(userId: $u) { id } }",
        {"u": user.id},
        token=operator,
    )
    await gql(
        client,
        "mutation($u: ID!) { unfreezeUser(userId: $u) { id } }",
        {"u": user.id},
        token=operator,
    )
    await gql(
        client,
        "mutation($t: ID!, $u: ID!) { addTenantMember(tenantId: $t, userId: $u, role: ORGANIZER) { role } }",
        {"t": tenant["id"], "u": user.id},
        token=operator,
    )
    log = (
        await gql(
            client,
            "query { auditLog(first: 50) { totalCount edges { node { action actorId targetId ip } } } }",
            token=operator,
        )
    ).data["auditLog"]
    actions = [e["node"]["action"] for e in log["edges"]]
    for expected in ("tenant.create", "user.freeze", "user.unfreeze", "tenant.add_member"):
        assert expected in actions
    assert all(
        e["node"]["ip"] == "203.0.113.7"
        for e in log["edges"]
        if e["node"]["action"] != "user.create"
    )
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    assert (await gql(client, "query { auditLog { totalCount } }", token=fan)).code == "FORBIDDEN"


async def test_a_box_office_sale_issues_tickets_that_check_in(
    client: httpx.AsyncClient, rt: Runtime
):
    sale = await on_sale(rt)
    organizer = await make_user(rt, "org@club.example", Role.ORGANIZER, sale.tenant)
    gate = await make_user(rt, "gate@club.example", Role.CHECKIN, sale.tenant)
    sold = await gql(
        client,
        """mutation($i: BoxOfficeSaleInput!) { boxOfficeSale(input: $i) { id tickets { ticketSn qrPayload status } } }""",
        {
            "i": {
                "sessionId": sale.session.id,
                "seatIds": sale.seat_ids[:2],
                "paymentMethod": "CARD",
            }
        },
        token=await token_for(rt, organizer),
    )
    tickets = sold.data["boxOfficeSale"]["tickets"]
    assert len(tickets) == 2
    check = 'mutation($p: String!) { checkIn(payload: $p, gate: "A") { ok code } }'
    gate_token = await token_for(rt, gate)
    assert (await gql(client, check, {"p": tickets[0]["qrPayload"]}, token=gate_token)).data[
        "checkIn"
    ] == {"ok": True, "code": None}
    again = (await gql(client, check, {"p": tickets[0]["qrPayload"]}, token=gate_token)).data[
        "checkIn"
    ]
    assert again == {"ok": False, "code": "ALREADY_CHECKED_IN"}
