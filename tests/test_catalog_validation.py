"""Invalid catalog inputs answer BAD_USER_INPUT naming the field, one rule per test, and
leave nothing half-written."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, func, select, update

from boxoffice.clock import utcnow
from boxoffice.models.events import Event, EventSession, SessionSeat, TicketTier
from boxoffice.models.identity import Role, TenantStatus
from boxoffice.runtime import Runtime
from tests.catalog_factories import (
    make_event,
    make_seat_map,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import GraphQLResult, gql, make_tenant, make_user, token_for

CREATE_SESSION = "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }"
CREATE_TIER = "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { id } }"
CREATE_EVENT = "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }"
CREATE_SEAT_MAP = "mutation($i: CreateSeatMapInput!) { createSeatMap(input: $i) { id } }"


@pytest.fixture
async def world(rt: Runtime) -> dict[str, Any]:
    tenant = await make_tenant(rt, "A")
    organizer = await make_user(rt, "org@a.example", Role.ORGANIZER, tenant)
    venue = await make_venue(rt, tenant)
    seat_map = await make_seat_map(rt, venue, {"A": 5, "B": 5})
    event = await make_event(rt, tenant, venue)
    return {
        "rt": rt,
        "tenant": tenant,
        "venue": venue,
        "seat_map": seat_map,
        "event": event,
        "token": await token_for(rt, organizer),
    }


def _bad(result: GraphQLResult, field: str) -> None:
    assert result.code == "BAD_USER_INPUT", result.body
    assert result.error["extensions"]["field"] == field, result.body


def _times(starts: datetime, **overrides: datetime | None) -> dict[str, Any]:
    values: dict[str, datetime | None] = {
        "startsAt": starts,
        "endsAt": starts + timedelta(hours=2),
        "saleStartsAt": starts - timedelta(days=5),
        **overrides,
    }
    return {k: v.isoformat() if v else None for k, v in values.items()}


async def _session_count(rt: Runtime) -> int:
    async with rt.db.read() as session:
        return (await session.exec(select(func.count()).select_from(EventSession))).one()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"endsAt": -timedelta(hours=1)}, "endsAt"),
        ({"endsAt": timedelta(0)}, "endsAt"),
        ({"saleStartsAt": timedelta(hours=3)}, "saleStartsAt"),
        ({"saleStartsAt": timedelta(minutes=30)}, "saleStartsAt"),
        ({"saleEndsAt": timedelta(hours=3)}, "saleEndsAt"),
        ({"saleEndsAt": -timedelta(days=6)}, "saleEndsAt"),
    ],
    ids=[
        "ends-before-start",
        "ends-at-start",
        "sale-starts-after-end",
        "sale-starts-after-start-without-sale-end",
        "sale-ends-after-session-ends",
        "sale-ends-before-it-starts",
    ],
)
async def test_session_times(
    client: httpx.AsyncClient, world: dict[str, Any], overrides: dict[str, timedelta], field: str
):
    starts = utcnow() + timedelta(days=10)
    times = _times(starts, **{k: starts + v for k, v in overrides.items()})
    result = await gql(
        client, CREATE_SESSION, {"i": {"eventId": world["event"].id, **times}}, token=world["token"]
    )
    _bad(result, field)
    assert await _session_count(world["rt"]) == 0


async def test_session_sale_may_run_into_the_show_when_its_end_is_given(
    client: httpx.AsyncClient, world: dict[str, Any]
):
    starts = utcnow() + timedelta(days=10)
    times = _times(starts, saleEndsAt=starts + timedelta(minutes=30))
    result = await gql(
        client, CREATE_SESSION, {"i": {"eventId": world["event"].id, **times}}, token=world["token"]
    )
    assert result.data["createSession"]["id"]


async def test_session_times_need_an_offset(client: httpx.AsyncClient, world: dict[str, Any]):
    times = _times(utcnow() + timedelta(days=10))
    times["startsAt"] = times["startsAt"][:19]  # no offset
    result = await gql(
        client, CREATE_SESSION, {"i": {"eventId": world["event"].id, **times}}, token=world["token"]
    )
    _bad(result, "startsAt")


async def test_session_seat_map_must_be_of_the_events_venue(
    client: httpx.AsyncClient, world: dict[str, Any]
):
    rt = world["rt"]
    elsewhere = await make_seat_map(rt, await make_venue(rt, world["tenant"], "Other Hall"))
    times = _times(utcnow() + timedelta(days=10))
    result = await gql(
        client,
        CREATE_SESSION,
        {"i": {"eventId": world["event"].id, "seatMapId": elsewhere.id, **times}},
        token=world["token"],
    )
    _bad(result, "seatMapId")


@pytest.mark.parametrize(
    ("price", "field"),
    [("-1", "price"), ("12.345", "price"), ("NaN", "price"), ("10000000.01", "price")],
    ids=["negative", "three-decimals", "nan", "too-large"],
)
async def test_tier_price(client: httpx.AsyncClient, world: dict[str, Any], price: str, field: str):
    session = await make_session(world["rt"], world["event"])
    result = await gql(
        client,
        CREATE_TIER,
        {"i": {"sessionId": session.id, "name": "GA", "price": price, "capacity": 10}},
        token=world["token"],
    )
    _bad(result, field)


async def test_tier_price_zero_is_free_and_fine(client: httpx.AsyncClient, world: dict[str, Any]):
    session = await make_session(world["rt"], world["event"])
    result = await gql(
        client,
        "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { price { amount } } }",
        {"i": {"sessionId": session.id, "name": "Free", "price": "0", "capacity": 10}},
        token=world["token"],
    )
    assert result.data["createTicketTier"]["price"]["amount"] == "0.00"


async def test_tier_original_price_is_not_below_price(
    client: httpx.AsyncClient, world: dict[str, Any]
):
    session = await make_session(world["rt"], world["event"])
    result = await gql(
        client,
        CREATE_TIER,
        {
            "i": {
                "sessionId": session.id,
                "name": "GA",
                "price": "100",
                "originalPrice": "80",
                "capacity": 10,
            }
        },
        token=world["token"],
    )
    _bad(result, "originalPrice")


@pytest.mark.parametrize("capacity", [0, -5, None], ids=["zero", "negative", "missing"])
async def test_general_admission_capacity(
    client: httpx.AsyncClient, world: dict[str, Any], capacity: int | None
):
    session = await make_session(world["rt"], world["event"])
    result = await gql(
        client,
        CREATE_TIER,
        {"i": {"sessionId": session.id, "name": "GA", "price": "10", "capacity": capacity}},
        token=world["token"],
    )
    _bad(result, "capacity")


async def test_seated_capacity_equals_its_seats(client: httpx.AsyncClient, world: dict[str, Any]):
    rt = world["rt"]
    session = await make_session(rt, world["event"], seat_map=world["seat_map"])
    wrong = await gql(
        client,
        CREATE_TIER,
        {
            "i": {
                "sessionId": session.id,
                "name": "A",
                "price": "10",
                "sections": ["A"],
                "capacity": 7,
            }
        },
        token=world["token"],
    )
    _bad(wrong, "capacity")
    async with rt.db.read() as s:
        assert (await s.exec(select(func.count()).select_from(SessionSeat))).one() == 0
        assert (await s.exec(select(func.count()).select_from(TicketTier))).one() == 0
    right = await gql(
        client,
        "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { capacity } }",
        {
            "i": {
                "sessionId": session.id,
                "name": "A",
                "price": "10",
                "sections": ["A"],
                "capacity": 10,
            }
        },
        token=world["token"],
    )
    assert right.data["createTicketTier"]["capacity"] == 10


async def test_seated_tier_needs_a_seat_map(client: httpx.AsyncClient, world: dict[str, Any]):
    session = await make_session(world["rt"], world["event"])
    result = await gql(
        client,
        CREATE_TIER,
        {"i": {"sessionId": session.id, "name": "A", "price": "10", "sections": ["A"]}},
        token=world["token"],
    )
    _bad(result, "sections")


async def test_seated_sections_must_exist(client: httpx.AsyncClient, world: dict[str, Any]):
    session = await make_session(world["rt"], world["event"], seat_map=world["seat_map"])
    result = await gql(
        client,
        CREATE_TIER,
        {"i": {"sessionId": session.id, "name": "Z", "price": "10", "sections": ["Z"]}},
        token=world["token"],
    )
    _bad(result, "sections")


async def test_seated_sections_do_not_overlap(client: httpx.AsyncClient, world: dict[str, Any]):
    rt = world["rt"]
    session = await make_session(rt, world["event"], seat_map=world["seat_map"])
    await make_tier(rt, session, "A", sections=["A"])
    result = await gql(
        client,
        CREATE_TIER,
        {"i": {"sessionId": session.id, "name": "AB", "price": "10", "sections": ["B", "A"]}},
        token=world["token"],
    )
    _bad(result, "sections")
    async with rt.db.read() as s:
        assert (await s.exec(select(func.count()).select_from(SessionSeat))).one() == 10


async def test_published_event_keeps_tiers_with_sales(
    client: httpx.AsyncClient, world: dict[str, Any]
):
    # given a published event whose tier has sold (the orders' counter moved)
    rt = world["rt"]
    session = await make_session(rt, world["event"])
    sold = await make_tier(rt, session, "Sold")
    unsold = await make_tier(rt, session, "Unsold")
    await publish(rt, world["event"])
    async with rt.db.write() as s:
        await s.exec(update(TicketTier).where(col(TicketTier.id) == sold.id).values(reserved=3))
    delete = "mutation($id: ID!) { deleteTicketTier(id: $id) }"
    # when the organizer removes both tiers
    refused = await gql(client, delete, {"id": sold.id}, token=world["token"])
    allowed = await gql(client, delete, {"id": unsold.id}, token=world["token"])
    # then only the one without sales goes
    _bad(refused, "id")
    assert allowed.data["deleteTicketTier"] is True
    shrink = await gql(
        client,
        "mutation($id: ID!) { updateTicketTier(id: $id, input: {capacity: 2}) { id } }",
        {"id": sold.id},
        token=world["token"],
    )
    _bad(shrink, "capacity")
    gone = await gql(
        client,
        "mutation($id: ID!) { deleteSession(id: $id) }",
        {"id": session.id},
        token=world["token"],
    )
    _bad(gone, "id")
    async with rt.db.read() as s:
        left = (await s.exec(select(TicketTier.name))).all()
    assert left == ["Sold"]


async def test_publish_needs_a_session(client: httpx.AsyncClient, world: dict[str, Any]):
    result = await gql(
        client,
        "mutation($id: ID!) { publishEvent(id: $id) { id } }",
        {"id": world["event"].id},
        token=world["token"],
    )
    _bad(result, "sessions")


async def test_publish_needs_a_tier(client: httpx.AsyncClient, world: dict[str, Any]):
    await make_session(world["rt"], world["event"])
    result = await gql(
        client,
        "mutation($id: ID!) { publishEvent(id: $id) { id } }",
        {"id": world["event"].id},
        token=world["token"],
    )
    _bad(result, "tiers")


async def test_publish_needs_an_active_tenant(client: httpx.AsyncClient, rt: Runtime):
    pending = await make_tenant(rt, "Pending", status=TenantStatus.PENDING)
    organizer = await make_user(rt, "org@p.example", Role.ORGANIZER, pending)
    event = await make_event(rt, pending, await make_venue(rt, pending))
    await make_tier(rt, await make_session(rt, event))
    result = await gql(
        client,
        "mutation($id: ID!) { publishEvent(id: $id) { status } }",
        {"id": event.id},
        token=await token_for(rt, organizer),
    )
    _bad(result, "tenantId")


async def test_publish_needs_every_seat_priced_or_blocked(
    client: httpx.AsyncClient, world: dict[str, Any]
):
    # given a seated session where only section A is priced
    rt = world["rt"]
    session = await make_session(rt, world["event"], seat_map=world["seat_map"])
    await make_tier(rt, session, "A", sections=["A"])
    publish_event = "mutation($id: ID!) { publishEvent(id: $id) { status } }"
    refused = await gql(client, publish_event, {"id": world["event"].id}, token=world["token"])
    _bad(refused, "sessions")
    # when section B's seats are blocked
    async with rt.db.read() as s:
        from boxoffice.models.venues import Seat

        b_seats = (
            await s.exec(
                select(Seat.id).where(Seat.seat_map_id == world["seat_map"].id, Seat.section == "B")
            )
        ).all()
    blocked = await gql(
        client,
        "mutation($s: ID!, $ids: [ID!]!) { setSeatsBlocked(sessionId: $s, seatIds: $ids, "
        "blocked: true) { id } }",
        {"s": session.id, "ids": list(b_seats)},
        token=world["token"],
    )
    assert not blocked.errors, blocked.body
    # then it publishes
    done = await gql(client, publish_event, {"id": world["event"].id}, token=world["token"])
    assert done.data["publishEvent"]["status"] == "ON_SALE"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": "  "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"category": "OPERA_ON_ICE"}, "category"),
        ({"city": ""}, "city"),
        ({"posterUrl": "ftp://poster"}, "posterUrl"),
        ({"tags": ["x" * 33]}, "tags[0]"),
        ({"performers": ["ok", ""]}, "performers[1]"),
    ],
    ids=["blank-title", "long-title", "category", "city", "poster", "tag", "performer"],
)
async def test_event_fields(
    client: httpx.AsyncClient, world: dict[str, Any], changes: dict[str, Any], field: str
):
    values = {
        "tenantId": world["tenant"].id,
        "title": "Fine",
        "category": "CONCERT",
        "city": "上海",
        "venueId": world["venue"].id,
        **changes,
    }
    result = await gql(client, CREATE_EVENT, {"i": values}, token=world["token"])
    _bad(result, field)
    async with world["rt"].db.read() as s:
        assert (await s.exec(select(func.count()).select_from(Event))).one() == 1


async def test_category_accepts_friendly_spellings(
    client: httpx.AsyncClient, world: dict[str, Any]
):
    values = {
        "tenantId": world["tenant"].id,
        "title": "Fine",
        "category": "stand-up",
        "city": "上海",
        "venueId": world["venue"].id,
    }
    result = await gql(
        client,
        "mutation($i: CreateEventInput!) { createEvent(input: $i) { category } }",
        {"i": values},
        token=world["token"],
    )
    assert result.data["createEvent"]["category"] == "STANDUP"


@pytest.mark.parametrize(
    ("sections", "field"),
    [
        ([], "sections"),
        ([{"name": "A", "rows": [{"label": "1", "seats": 0}]}], "sections[0].rows[0].seats"),
        ([{"name": "A", "rows": [{"label": "1", "seats": 1001}]}], "sections[0].rows[0].seats"),
        ([{"name": "A"}], "sections[0].rows"),
        (
            [
                {"name": "A", "rows": [{"label": "1", "seats": 2}]},
                {"name": "A", "rows": [{"label": "1", "seats": 2}]},
            ],
            "sections[1].name",
        ),
        (
            [
                {
                    "name": "A",
                    "rows": [{"label": "1", "seats": 2}],
                    "seats": [{"row": "1", "number": 2}],
                }
            ],
            "sections[0].seats[0]",
        ),
        ([{"name": "A", "seats": [{"row": "1", "number": 1, "x": 1.5}]}], "sections[0].seats[0].y"),
        (
            [{"name": "A", "rowRanges": [{"from": "A", "to": "3", "seats": 2}]}],
            "sections[0].rowRanges[0].last",
        ),
        (
            [{"name": "A", "rowRanges": [{"from": "T", "to": "A", "seats": 2}]}],
            "sections[0].rowRanges[0].last",
        ),
        ([{"name": "x" * 33, "rows": [{"label": "1", "seats": 2}]}], "sections[0].name"),
        (
            [{"name": "A", "rows": [{"label": "123456789", "seats": 2}]}],
            "sections[0].rows[0].label",
        ),
    ],
    ids=[
        "no-sections",
        "empty-row",
        "row-too-long",
        "no-seats",
        "duplicate-section",
        "duplicate-seat",
        "x-without-y",
        "mixed-range",
        "backwards-range",
        "long-section-name",
        "long-row-label",
    ],
)
async def test_seat_map_configuration(
    client: httpx.AsyncClient, world: dict[str, Any], sections: list[Any], field: str
):
    result = await gql(
        client,
        CREATE_SEAT_MAP,
        {"i": {"venueId": world["venue"].id, "name": "Bad", "sections": sections}},
        token=world["token"],
    )
    _bad(result, field)


async def test_cancelled_events_are_final(client: httpx.AsyncClient, world: dict[str, Any]):
    cancel = 'mutation($id: ID!) { cancelEvent(id: $id, reason: "storm") { status cancelReason } }'
    first = await gql(client, cancel, {"id": world["event"].id}, token=world["token"])
    assert first.data["cancelEvent"] == {"status": "CANCELLED", "cancelReason": "storm"}
    again = await gql(client, cancel, {"id": world["event"].id}, token=world["token"])
    _bad(again, "id")
    edit = await gql(
        client,
        'mutation($id: ID!) { updateEvent(id: $id, input: {title: "back"}) { id } }',
        {"id": world["event"].id},
        token=world["token"],
    )
    _bad(edit, "id")
    starts = utcnow() + timedelta(days=3)
    more = await gql(
        client,
        CREATE_SESSION,
        {"i": {"eventId": world["event"].id, **_times(starts)}},
        token=world["token"],
    )
    _bad(more, "eventId")


async def test_event_filter_inputs(client: httpx.AsyncClient, world: dict[str, Any]):
    query = "query($f: EventFilter, $a: String) { events(filter: $f, after: $a) { totalCount } }"
    now = utcnow()
    cases = [
        (
            {"f": {"dateFrom": now.isoformat(), "dateTo": (now - timedelta(days=1)).isoformat()}},
            "filter.dateTo",
        ),
        ({"f": {"category": "NOPE"}}, "filter.category"),
        ({"f": {"keyword": " ".join(str(i) for i in range(9))}}, "filter.keyword"),
        ({"a": "not-a-cursor"}, "after"),
    ]
    for variables, field in cases:
        _bad(await gql(client, query, variables), field)
    too_many = await gql(client, "{ events(first: 51) { totalCount } }")
    _bad(too_many, "first")
