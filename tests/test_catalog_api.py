"""The whole catalog through GraphQL: an organizer builds venue → seat map → event → session →
tiers → publishes; a customer finds it by keyword, city and date and sees availability."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.models.identity import AuditEntry, Role
from boxoffice.runtime import Runtime
from tests.helpers import gql, make_tenant, make_user, token_for

CREATE_VENUE = """mutation($i: CreateVenueInput!) { createVenue(input: $i) { id name city } }"""
CREATE_SEAT_MAP = """mutation($i: CreateSeatMapInput!) {
  createSeatMap(input: $i) { id seatCount sections { name rows seatCount } } }"""
CREATE_EVENT = """mutation($i: CreateEventInput!) { createEvent(input: $i) { id status } }"""
CREATE_SESSION = """mutation($i: CreateSessionInput!) {
  createSession(input: $i) { id status saleEndsAt queueEnabled } }"""
CREATE_TIER = """mutation($i: CreateTicketTierInput!) {
  createTicketTier(input: $i) { id name price { amount currency } capacity available seated
    sections limitPerOrder } }"""
PUBLISH = """mutation($id: ID!) { publishEvent(id: $id) { id status publishedAt } }"""
SEARCH = """query($f: EventFilter) { events(filter: $f) { totalCount
  edges { cursor node { id title city status
    venue { name }
    sessions { id startsAt saleStartsAt queueEnabled
      tiers { id name price { amount currency } capacity available seated limitPerOrder }
      availability { sessionId version tiers { tierId available } seatCount }
      seatMap { id seatCount } } } } } }"""


async def test_organizer_builds_and_customer_finds(client: httpx.AsyncClient, rt: Runtime):
    # given a tenant with an organizer, and a customer
    tenant = await make_tenant(rt, "Laugh Lab")
    organizer = await make_user(rt, "org@laugh.example", Role.ORGANIZER, tenant)
    customer = await make_user(rt, "fan@example.com")
    org = await token_for(rt, organizer)
    fan = await token_for(rt, customer)

    # when the organizer builds the catalog through GraphQL
    venue = (
        await gql(
            client,
            CREATE_VENUE,
            {
                "i": {
                    "tenantId": tenant.id,
                    "name": "Laugh Lab 剧场",
                    "city": "上海",
                    "address": "静安区 1 号",
                }
            },
            token=org,
        )
    ).data["createVenue"]
    seat_map = (
        await gql(
            client,
            CREATE_SEAT_MAP,
            {
                "i": {
                    "venueId": venue["id"],
                    "name": "Main hall",
                    "sections": [
                        {
                            "name": "A区",
                            "rows": [{"label": "1", "seats": 10}, {"label": "2", "seats": 10}],
                        },
                        {"name": "B区", "rowRanges": [{"from": "A", "to": "C", "seats": 4}]},
                    ],
                }
            },
            token=org,
        )
    ).data["createSeatMap"]
    assert seat_map["seatCount"] == 32
    assert [s["name"] for s in seat_map["sections"]] == ["A区", "B区"]
    assert seat_map["sections"][1]["rows"] == ["A", "B", "C"]
    event = (
        await gql(
            client,
            CREATE_EVENT,
            {
                "i": {
                    "tenantId": tenant.id,
                    "title": "周五夜 脱口秀 专场",
                    "category": "STANDUP",
                    "city": "上海",
                    "venueId": venue["id"],
                    "performers": ["李雷", "韩梅梅"],
                    "tags": ["喜剧"],
                }
            },
            token=org,
        )
    ).data["createEvent"]
    assert event["status"] == "DRAFT"
    starts = utcnow() + timedelta(days=10)
    session = (
        await gql(
            client,
            CREATE_SESSION,
            {
                "i": {
                    "eventId": event["id"],
                    "startsAt": starts.isoformat(),
                    "endsAt": (starts + timedelta(hours=2)).isoformat(),
                    "saleStartsAt": (utcnow() - timedelta(minutes=1)).isoformat(),
                    "seatMapId": seat_map["id"],
                    "queueEnabled": True,
                }
            },
            token=org,
        )
    ).data["createSession"]
    assert session["status"] == "ON_SALE" and session["queueEnabled"] is True
    vip = (
        await gql(
            client,
            CREATE_TIER,
            {
                "i": {
                    "sessionId": session["id"],
                    "name": "VIP",
                    "price": "1280.00",
                    "sections": ["A区"],
                    "limitPerOrder": 4,
                }
            },
            token=org,
        )
    ).data["createTicketTier"]
    assert vip["price"] == {"amount": "1280.00", "currency": "CNY"}
    assert vip["seated"] is True and vip["capacity"] == 20 and vip["available"] == 20
    # a draft with unpriced seats cannot be published
    early = await gql(client, PUBLISH, {"id": event["id"]}, token=org)
    assert early.code == "BAD_USER_INPUT" and early.error["extensions"]["field"] == "sessions"
    await gql(
        client,
        CREATE_TIER,
        {"i": {"sessionId": session["id"], "name": "看台", "price": "380", "sections": ["B区"]}},
        token=org,
    )
    # and drafts are invisible to customers
    hidden = await gql(
        client, "query($id: ID!) { event(id: $id) { id } }", {"id": event["id"]}, token=fan
    )
    assert hidden.code == "NOT_FOUND"
    published = (await gql(client, PUBLISH, {"id": event["id"]}, token=org)).data["publishEvent"]

    # then it is on sale
    assert published["status"] == "ON_SALE" and published["publishedAt"]
    # and a customer finds it by keyword, by city and by date
    for filter_ in (
        {"keyword": "脱口秀 李雷"},
        {"city": "上海"},
        {
            "dateFrom": (starts - timedelta(days=1)).isoformat(),
            "dateTo": (starts + timedelta(days=1)).isoformat(),
        },
    ):
        found = (await gql(client, SEARCH, {"f": filter_}, token=fan)).data["events"]
        assert found["totalCount"] == 1, filter_
        node = found["edges"][0]["node"]
        assert node["id"] == event["id"] and node["status"] == "ON_SALE"
    assert node["venue"]["name"] == "Laugh Lab 剧场"
    tiers = node["sessions"][0]["tiers"]
    assert [(t["name"], t["capacity"], t["available"]) for t in tiers] == [
        ("VIP", 20, 20),
        ("看台", 12, 12),
    ]
    current = node["sessions"][0]["availability"]
    assert current["sessionId"] == session["id"]
    assert current["version"] > 0
    assert current["seatCount"] == 32
    assert {t["tierId"]: t["available"] for t in current["tiers"]} == {
        t["id"]: t["available"] for t in tiers
    }
    # and nothing matches another city or another date
    for filter_ in (
        {"city": "北京"},
        {"keyword": "演唱会"},
        {"dateFrom": (starts + timedelta(days=1)).isoformat()},
    ):
        none = (await gql(client, SEARCH, {"f": filter_}, token=fan)).data["events"]
        assert none["totalCount"] == 0 and none["edges"] == [], filter_
    # and the seat map through the session carries tiers and statuses
    detail = await gql(
        client,
        """query($id: ID!) { sessionAvailability(sessionId: $id) {
          sessionId version tiers { tierId available } seats { id status } compact } }""",
        {"id": session["id"]},
    )
    seats = detail.data["sessionAvailability"]["seats"]
    assert len(seats) == 32 and {s["status"] for s in seats} == {"AVAILABLE"}
    assert len(detail.data["sessionAvailability"]["compact"]["ids"]) == 32
    # and every admin write left an audit entry
    async with rt.db.read() as s:
        entries = (await s.exec(select(AuditEntry).where(AuditEntry.tenant_id == tenant.id))).all()
        actions = sorted(e.action for e in entries if not e.action.startswith("user."))
    assert {e.actor_id for e in entries if not e.action.startswith("user.")} == {organizer.id}
    assert actions == [
        "event.create",
        "event.publish",
        "seat_map.create",
        "session.create",
        "tier.create",
        "tier.create",
        "venue.create",
    ]
