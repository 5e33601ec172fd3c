"""Tickets and check-in over GraphQL: what holders, gate staff and organizers see and do."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from boxoffice.clock import utcnow
from boxoffice.jobs import CONSUMERS, all_jobs
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.services.ticket_issuance import CONSUMER_NAME
from boxoffice.verifier import Bundle, Verdict, verify
from tests.helpers import gql, make_tenant, make_user, token_for
from tests.order_factories import on_sale, paid_order
from tests.test_catalog_queries import counting
from tests.ticket_factories import ticketed_order, tickets_of

TICKET_FIELDS = """
  id ticketSn status qrPayload qrSvg seatLabel tierName price { amount currency }
  seat { id section row number label }
  tier { id name } session { id startsAt } event { id title } order { id orderNo }
  checkIn { at gate deviceId source }
"""

CHECK_IN = """
mutation($p: String!, $g: String, $s: ID) {
  checkIn(payload: $p, gate: $g, sessionId: $s) {
    ok code reason message checkedInAt gate conflict
    firstCheckIn { at gate }
    ticket { id ticketSn status }
  }
}
"""


async def staff_token(rt: Runtime, email: str, role: Role, tenant: Any = None) -> str:
    return await token_for(rt, await make_user(rt, email, role, tenant))


async def test_the_holder_sees_the_orders_tickets_with_their_qr_codes(
    rt: Runtime, client: httpx.AsyncClient
):
    # given a paid order of two seats
    sale = await on_sale(rt)
    user = await make_user(rt, "holder@example.com")
    order, tickets = await ticketed_order(rt, user, sale)
    token = await token_for(rt, user)
    # when the holder reads the order and their tickets
    result = await gql(
        client,
        f"query($id: ID!) {{ order(id: $id) {{ tickets {{ {TICKET_FIELDS} }} }} "
        f"myTickets(first: 10) {{ totalCount edges {{ node {{ id }} }} }} }}",
        {"id": order.id},
        token=token,
    )
    # then every ticket is there with its payload, QR image, seat, tier, session and event
    data = result.data
    listed = data["order"]["tickets"]
    assert sorted(t["ticketSn"] for t in listed) == sorted(t.ticket_sn for t in tickets)
    by_sn = {t.ticket_sn: t for t in tickets}
    for shown in listed:
        ticket = by_sn[shown["ticketSn"]]
        assert shown["status"] == "VALID" and shown["qrPayload"] == ticket.qr_payload
        assert shown["qrSvg"].startswith("<svg") and "viewBox" in shown["qrSvg"]
        assert shown["seat"]["id"] == ticket.seat_id and shown["seat"]["section"] == "A"
        assert shown["tier"]["name"] == "Seated" and shown["event"]["title"] == "On Sale Show"
        assert shown["session"]["id"] == sale.session.id
        assert shown["order"]["orderNo"] == order.order_no
        assert shown["price"] == {"amount": "380.00", "currency": "CNY"}
        assert shown["checkIn"] is None
    assert data["myTickets"]["totalCount"] == 2
    assert {e["node"]["id"] for e in data["myTickets"]["edges"]} == {t.id for t in tickets}


async def test_tickets_appear_after_payment_through_the_registered_job(rt: Runtime):
    # given the issuance consumer is registered with the background jobs
    assert CONSUMER_NAME in [c.name for c in CONSUMERS]
    job = next(j for j in all_jobs() if j.name == f"outbox:{CONSUMER_NAME}")
    assert job.interval_seconds <= 0.5
    # when an order is paid and the job ticks once
    sale = await on_sale(rt)
    user = await make_user(rt, "quick@example.com")
    order = await paid_order(rt, user, sale.session, tier_id=sale.ga.id, quantity=2)
    await job.run(rt)
    # then its tickets exist
    assert len(await tickets_of(rt, order.id)) == 2


async def test_gate_staff_see_tickets_but_not_their_payloads_and_strangers_see_nothing(
    rt: Runtime, client: httpx.AsyncClient
):
    sale = await on_sale(rt)
    user = await make_user(rt, "private@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    gate = await staff_token(rt, "gate@club.test", Role.CHECKIN, sale.tenant)
    boss = await staff_token(rt, "boss@club.test", Role.ORGANIZER, sale.tenant)
    stranger = await token_for(rt, await make_user(rt, "stranger@example.com"))
    query = "query($id: ID!) { ticket(id: $id) { ticketSn qrPayload qrSvg order { id } } }"
    seen_by_gate = (await gql(client, query, {"id": ticket.id}, token=gate)).data["ticket"]
    assert seen_by_gate == {
        "ticketSn": ticket.ticket_sn,
        "qrPayload": None,
        "qrSvg": None,
        "order": None,
    }
    seen_by_boss = (await gql(client, query, {"id": ticket.id}, token=boss)).data["ticket"]
    assert seen_by_boss["qrPayload"] == ticket.qr_payload
    assert (await gql(client, query, {"id": ticket.id}, token=stranger)).data["ticket"] is None


async def test_twenty_concurrent_check_ins_over_graphql_admit_one(
    rt: Runtime, client: httpx.AsyncClient
):
    # given a ticket and gate staff
    sale = await on_sale(rt)
    user = await make_user(rt, "crowd@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    gate = await staff_token(rt, "gate@club.test", Role.CHECKIN, sale.tenant)
    # when twenty scans arrive at once from twenty gates
    results = await asyncio.gather(
        *(
            gql(client, CHECK_IN, {"p": ticket.qr_payload, "g": f"Gate {i}"}, token=gate)
            for i in range(20)
        )
    )
    answers = [r.data["checkIn"] for r in results]
    # then one is admitted and nineteen are told when and where
    [winner] = [a for a in answers if a["ok"]]
    losers = [a for a in answers if not a["ok"]]
    assert len(losers) == 19
    assert winner["firstCheckIn"] == {"at": winner["checkedInAt"], "gate": winner["gate"]}
    assert winner["ticket"]["status"] == "USED"
    for loser in losers:
        assert loser["code"] == "ALREADY_CHECKED_IN"
        assert loser["firstCheckIn"] == winner["firstCheckIn"]
        assert loser["ticket"]["ticketSn"] == ticket.ticket_sn


async def test_check_in_refusals_are_results_and_authorization_failures_errors(
    rt: Runtime, client: httpx.AsyncClient
):
    sale = await on_sale(rt)
    other_sale = await on_sale(rt, tenant=sale.tenant)
    user = await make_user(rt, "refusals@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    gate = await staff_token(rt, "gate@club.test", Role.CHECKIN, sale.tenant)
    foreign = await staff_token(rt, "gate@other.test", Role.CHECKIN, await make_tenant(rt, "O"))
    customer = await token_for(rt, user)
    # a ticket of another session, and a tampered one, are results
    wrong = await gql(
        client, CHECK_IN, {"p": ticket.qr_payload, "s": other_sale.session.id}, token=gate
    )
    assert (wrong.data["checkIn"]["ok"], wrong.data["checkIn"]["code"]) == (False, "WRONG_SESSION")
    tampered = ticket.qr_payload[:10] + ("A" if ticket.qr_payload[10] != "A" else "B")
    tampered += ticket.qr_payload[11:]
    bad = await gql(client, CHECK_IN, {"p": tampered}, token=gate)
    assert bad.data["checkIn"]["code"] == "SIGNATURE_INVALID"
    assert bad.data["checkIn"]["ticket"] is None
    # another tenant's gate staff get NOT_FOUND, a customer FORBIDDEN, nobody UNAUTHENTICATED
    assert (await gql(client, CHECK_IN, {"p": ticket.qr_payload}, token=foreign)).code == (
        "NOT_FOUND"
    )
    assert (await gql(client, CHECK_IN, {"p": ticket.qr_payload}, token=customer)).code == (
        "FORBIDDEN"
    )
    assert (await gql(client, CHECK_IN, {"p": ticket.qr_payload})).code == "UNAUTHENTICATED"
    # and the ticket is still unused
    ok = await gql(client, CHECK_IN, {"p": ticket.qr_payload, "s": sale.session.id}, token=gate)
    assert ok.data["checkIn"]["ok"] is True


async def test_a_gate_works_offline_from_the_bundle_and_uploads_its_scans(
    rt: Runtime, client: httpx.AsyncClient
):
    # given tickets, and a gate that downloads the session's bundle
    sale = await on_sale(rt)
    user = await make_user(rt, "offline@example.com")
    _order, tickets = await ticketed_order(rt, user, sale)
    gate = await staff_token(rt, "gate@club.test", Role.CHECKIN, sale.tenant)
    boss = await staff_token(rt, "boss@club.test", Role.ORGANIZER, sale.tenant)
    bundle_json = (
        await gql(
            client,
            "query($s: ID!) { scannerBundle(sessionId: $s) { sessionId "
            "publicKeys { kid key validUntil } revoked version generatedAt } }",
            {"s": sale.session.id},
            token=gate,
        )
    ).data["scannerBundle"]
    bundle = Bundle.parse(bundle_json)
    # when it admits both tickets without a network (one of them at two gates)
    now = utcnow()
    verdicts = [verify(bundle, t.qr_payload, session=sale.session.id, now=now) for t in tickets]
    assert [v.verdict for v in verdicts] == [Verdict.VALID, Verdict.VALID]
    scans = [
        {
            "payload": tickets[0].qr_payload,
            "deviceId": "d1",
            "gate": "East",
            "scannedAt": (now - timedelta(minutes=3)).isoformat(),
        },
        {
            "payload": tickets[1].qr_payload,
            "deviceId": "d1",
            "gate": "East",
            "scannedAt": (now - timedelta(minutes=2)).isoformat(),
        },
        {
            "payload": tickets[1].qr_payload,
            "deviceId": "d2",
            "gate": "West",
            "scannedAt": (now - timedelta(minutes=1)).isoformat(),
        },
    ]
    upload = (
        "mutation($s: ID!, $scans: [OfflineScanInput!]!) { uploadOfflineScans(sessionId: $s, "
        "scans: $scans) { ok code conflict firstCheckIn { at gate } ticket { ticketSn } } }"
    )
    first = (await gql(client, upload, {"s": sale.session.id, "scans": scans}, token=gate)).data
    again = (await gql(client, upload, {"s": sale.session.id, "scans": scans}, token=gate)).data
    # then the uploads agree, once recorded, with the conflict reported to the organizer
    expected = [(True, None, False), (True, None, True), (False, "ALREADY_CHECKED_IN", True)]
    for data in (first, again):
        got = [(r["ok"], r["code"], r["conflict"]) for r in data["uploadOfflineScans"]]
        assert got == expected
    conflicts = (
        await gql(
            client,
            "query($s: ID!) { checkInConflicts(sessionId: $s) { totalCount nodes { ticketSn "
            "first { gate deviceId } second { gate deviceId } } } }",
            {"s": sale.session.id},
            token=boss,
        )
    ).data["checkInConflicts"]
    assert conflicts["totalCount"] == 1
    assert conflicts["nodes"][0] == {
        "ticketSn": tickets[1].ticket_sn,
        "first": {"gate": "East", "deviceId": "d1"},
        "second": {"gate": "West", "deviceId": "d2"},
    }
    # and the holder sees the check-in
    mine = await gql(
        client,
        "query($id: ID!) { ticket(id: $id) { status checkIn { gate source } } }",
        {"id": tickets[0].id},
        token=await token_for(rt, user),
    )
    assert mine.data["ticket"] == {
        "status": "USED",
        "checkIn": {"gate": "East", "source": "OFFLINE"},
    }


async def test_reissue_print_and_send_over_graphql(rt: Runtime, client: httpx.AsyncClient):
    # given a ticketed order, its organizer and an agent
    sale = await on_sale(rt)
    user = await make_user(rt, "paper@example.com")
    order, [ticket, other] = await ticketed_order(rt, user, sale)
    boss = await staff_token(rt, "boss@club.test", Role.ORGANIZER, sale.tenant)
    agent = await staff_token(rt, "agent@example.com", Role.AGENT)
    print_query = (
        "mutation($ids: [ID!]!) { printTickets(orderIds: $ids) { ticketSn eventTitle venueName "
        "seatLabel tierName price { amount } qrPayload qrSvg sessionStartsAt ticket { id } } }"
    )
    # when the agent prints the order
    printed = (await gql(client, print_query, {"ids": [order.id]}, token=agent)).data
    assert sorted(p["ticketSn"] for p in printed["printTickets"]) == sorted(
        [ticket.ticket_sn, other.ticket_sn]
    )
    assert all(p["qrSvg"].startswith("<svg") for p in printed["printTickets"])
    # then printing again is refused with a reason
    again = await gql(client, print_query, {"ids": [order.id]}, token=agent)
    assert again.code == "BAD_USER_INPUT"
    assert again.error["extensions"]["reason"] == "ALREADY_PRINTED"
    # when the organizer reissues both, the agent prints the new ones
    reissue = (
        'mutation($id: ID!) { reissueTicket(ticketId: $id, reason: "lost") '
        "{ id ticketSn status reissuedFromId } }"
    )
    fresh = [
        (await gql(client, reissue, {"id": t.id}, token=boss)).data["reissueTicket"]
        for t in (ticket, other)
    ]
    assert [f["reissuedFromId"] for f in fresh] == [ticket.id, other.id]
    reprinted = (await gql(client, print_query, {"ids": [order.id]}, token=agent)).data
    assert sorted(p["ticketSn"] for p in reprinted["printTickets"]) == sorted(
        f["ticketSn"] for f in fresh
    )
    # and a customer may not reissue; the buyer may send the e-tickets
    customer = await token_for(rt, user)
    assert (await gql(client, reissue, {"id": fresh[0]["id"]}, token=customer)).code == "FORBIDDEN"
    sent = await gql(
        client, "mutation($id: ID!) { sendTickets(orderId: $id) }", {"id": order.id}, token=customer
    )
    assert sent.data == {"sendTickets": True}


async def test_a_page_of_tickets_costs_a_constant_number_of_statements(
    rt: Runtime, client: httpx.AsyncClient
):
    # given a holder with one order, then with four
    sale = await on_sale(rt, ga_capacity=20)
    user = await make_user(rt, "many@example.com")
    token = await token_for(rt, user)
    query = f"{{ myTickets(first: 50) {{ edges {{ node {{ {TICKET_FIELDS} }} }} }} }}"

    async def statements() -> int:
        with counting(rt) as seen:
            result = await gql(client, query, token=token)
        assert result.data["myTickets"]["edges"]
        return len(seen)

    await ticketed_order(rt, user, sale)
    await statements()  # the first request of a token also looks its user up (then cached)
    few = await statements()
    for i in range(3):
        await ticketed_order(rt, user, sale, seat_ids=sale.seat_ids[2 + 2 * i : 4 + 2 * i])
    await ticketed_order(rt, user, sale, tier_id=sale.ga.id, quantity=4)
    # then reading 14 tickets costs what reading 2 did
    assert await statements() == few
