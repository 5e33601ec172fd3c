"""Tenant scoping of the catalog, both ways: an organizer of one tenant gets NOT_FOUND for
everything of the other tenant, reads and writes alike, and cannot create under it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from boxoffice.clock import utcnow
from boxoffice.models.identity import Role, Tenant
from boxoffice.runtime import Runtime
from tests.catalog_factories import make_event, make_seat_map, make_session, make_tier, make_venue
from tests.helpers import gql, make_tenant, make_user, token_for


async def _catalog(rt: Runtime, tenant: Tenant) -> dict[str, Any]:
    """A tenant with a venue, a seat map and a DRAFT event with a session and a tier."""
    venue = await make_venue(rt, tenant, f"{tenant.name} Hall")
    seat_map = await make_seat_map(rt, venue)
    event = await make_event(rt, tenant, venue, f"{tenant.name} Night")
    session = await make_session(rt, event)
    tier = await make_tier(rt, session)
    return {
        "tenant": tenant.id,
        "venue": venue.id,
        "seatMap": seat_map.id,
        "event": event.id,
        "session": session.id,
        "tier": tier.id,
    }


def _operations(
    other: dict[str, Any], mine: dict[str, Any]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, document, variables) of every read and write that touches ``other``'s objects."""
    starts = utcnow() + timedelta(days=3)
    times = {
        "startsAt": starts.isoformat(),
        "endsAt": (starts + timedelta(hours=2)).isoformat(),
        "saleStartsAt": utcnow().isoformat(),
    }
    sections = [{"name": "X", "rows": [{"label": "A", "seats": 2}]}]
    return [
        ("venue", "query($id: ID!) { venue(id: $id) { id } }", {"id": other["venue"]}),
        ("seatMap", "query($id: ID!) { seatMap(id: $id) { id } }", {"id": other["seatMap"]}),
        ("event", "query($id: ID!) { event(id: $id) { id } }", {"id": other["event"]}),
        ("session", "query($id: ID!) { session(id: $id) { id } }", {"id": other["session"]}),
        (
            "sessionAvailability",
            "query($id: ID!) { sessionAvailability(sessionId: $id) { sessionId } }",
            {"id": other["session"]},
        ),
        (
            "createVenue",
            "mutation($i: CreateVenueInput!) { createVenue(input: $i) { id } }",
            {"i": {"tenantId": other["tenant"], "name": "Mine", "city": "上海", "address": "x"}},
        ),
        (
            "updateVenue",
            'mutation($id: ID!) { updateVenue(id: $id, input: {name: "pwned"}) { id } }',
            {"id": other["venue"]},
        ),
        (
            "createSeatMap",
            "mutation($i: CreateSeatMapInput!) { createSeatMap(input: $i) { id } }",
            {"i": {"venueId": other["venue"], "name": "Mine", "sections": sections}},
        ),
        (
            "createEvent",
            "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }",
            {
                "i": {
                    "tenantId": other["tenant"],
                    "title": "Mine",
                    "category": "STANDUP",
                    "city": "上海",
                    "venueId": other["venue"],
                }
            },
        ),
        (
            "createEvent(own tenant, their venue)",
            "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }",
            {
                "i": {
                    "tenantId": mine["tenant"],
                    "title": "Mine",
                    "category": "STANDUP",
                    "city": "上海",
                    "venueId": other["venue"],
                }
            },
        ),
        (
            "updateEvent",
            'mutation($id: ID!) { updateEvent(id: $id, input: {title: "pwned"}) { id } }',
            {"id": other["event"]},
        ),
        (
            "publishEvent",
            "mutation($id: ID!) { publishEvent(id: $id) { id } }",
            {"id": other["event"]},
        ),
        (
            "cancelEvent",
            "mutation($id: ID!) { cancelEvent(id: $id) { id } }",
            {"id": other["event"]},
        ),
        (
            "createSession",
            "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
            {"i": {"eventId": other["event"], **times}},
        ),
        (
            "createSession(own event, their seat map)",
            "mutation($i: CreateSessionInput!) { createSession(input: $i) { id } }",
            {"i": {"eventId": mine["event"], "seatMapId": other["seatMap"], **times}},
        ),
        (
            "updateSession",
            "mutation($id: ID!) { updateSession(id: $id, input: {queueEnabled: true}) { id } }",
            {"id": other["session"]},
        ),
        (
            "deleteSession",
            "mutation($id: ID!) { deleteSession(id: $id) }",
            {"id": other["session"]},
        ),
        (
            "createTicketTier",
            "mutation($i: CreateTicketTierInput!) { createTicketTier(input: $i) { id } }",
            {"i": {"sessionId": other["session"], "name": "Mine", "price": "1", "capacity": 1}},
        ),
        (
            "updateTicketTier",
            'mutation($id: ID!) { updateTicketTier(id: $id, input: {price: "0"}) { id } }',
            {"id": other["tier"]},
        ),
        (
            "deleteTicketTier",
            "mutation($id: ID!) { deleteTicketTier(id: $id) }",
            {"id": other["tier"]},
        ),
        (
            "setSeatsBlocked",
            'mutation($s: ID!) { setSeatsBlocked(sessionId: $s, seatIds: ["x"], blocked: true)'
            " { id } }",
            {"s": other["session"]},
        ),
    ]


async def test_each_organizer_gets_not_found_for_the_other_tenant(
    client: httpx.AsyncClient, rt: Runtime
):
    # given two tenants, each with a draft catalog and an organizer
    a = await make_tenant(rt, "A")
    b = await make_tenant(rt, "B")
    catalogs = {"A": await _catalog(rt, a), "B": await _catalog(rt, b)}
    tokens = {
        "A": await token_for(rt, await make_user(rt, "org@a.example", Role.ORGANIZER, a)),
        "B": await token_for(rt, await make_user(rt, "org@b.example", Role.ORGANIZER, b)),
    }
    for me, them in (("A", "B"), ("B", "A")):
        for name, document, variables in _operations(catalogs[them], catalogs[me]):
            # when an organizer of one tenant touches the other tenant's catalog
            result = await gql(client, document, variables, token=tokens[me])
            # then it does not exist for them
            assert result.code == "NOT_FOUND", (me, name, result.body)
    # and nothing of either catalog changed
    for me in ("A", "B"):
        event = await gql(
            client,
            "query($id: ID!) { event(id: $id) { title status sessions { id tiers { price "
            "{ amount } } } } }",
            {"id": catalogs[me]["event"]},
            token=tokens[me],
        )
        data = event.data["event"]
        assert data["title"] == f"{me} Night" and data["status"] == "DRAFT"
        assert data["sessions"][0]["tiers"][0]["price"]["amount"] == "180.00"


async def test_own_catalog_is_readable_and_writable(client: httpx.AsyncClient, rt: Runtime):
    a = await make_tenant(rt, "A")
    mine = await _catalog(rt, a)
    token = await token_for(rt, await make_user(rt, "org@a.example", Role.ORGANIZER, a))
    for name, document, variables in _operations(mine, mine):
        if name in (
            "deleteSession",
            "deleteTicketTier",
            "cancelEvent",
            "publishEvent",
            "setSeatsBlocked",
            "createSession(own event, their seat map)",
        ):
            continue
        result = await gql(client, document, variables, token=token)
        assert not result.errors, (name, result.body)
    listed = await gql(
        client,
        "query($t: ID!) { events(filter: {tenantId: $t, status: DRAFT}) { totalCount } }",
        {"t": a.id},
        token=token,
    )
    assert listed.data["events"]["totalCount"] == 3  # its own draft and the two created above


@pytest.mark.parametrize("role", [Role.CUSTOMER, Role.CHECKIN])
async def test_customers_and_gate_staff_cannot_write(
    client: httpx.AsyncClient, rt: Runtime, role: Role
):
    a = await make_tenant(rt, "A")
    mine = await _catalog(rt, a)
    user = await make_user(rt, "someone@example.com", role, a if role == Role.CHECKIN else None)
    token = await token_for(rt, user)
    for name, document, variables in _operations(mine, mine):
        if document.startswith("query"):
            continue
        result = await gql(client, document, variables, token=token)
        assert result.code in ("FORBIDDEN", "NOT_FOUND"), (name, result.body)
        assert result.code == "FORBIDDEN" or role == Role.CHECKIN, (name, result.body)
    anonymous = await gql(
        client,
        "mutation($i: CreateVenueInput!) { createVenue(input: $i) { id } }",
        {"i": {"tenantId": a.id, "name": "x", "city": "x", "address": "x"}},
    )
    assert anonymous.code == "UNAUTHENTICATED"


async def test_agents_draw_seat_maps_for_any_tenant_but_build_no_events(
    client: httpx.AsyncClient, rt: Runtime
):
    a = await make_tenant(rt, "A")
    mine = await _catalog(rt, a)
    agent = await token_for(rt, await make_user(rt, "agent@example.com", Role.AGENT))
    drawn = await gql(
        client,
        "mutation($i: CreateSeatMapInput!) { createSeatMap(input: $i) { id seatCount } }",
        {
            "i": {
                "venueId": mine["venue"],
                "name": "By the agent",
                "sections": [{"name": "X", "rows": [{"label": "A", "seats": 3}]}],
            }
        },
        token=agent,
    )
    assert drawn.data["createSeatMap"]["seatCount"] == 3
    refused = await gql(
        client,
        "mutation($i: CreateEventInput!) { createEvent(input: $i) { id } }",
        {
            "i": {
                "tenantId": a.id,
                "title": "x",
                "category": "OTHER",
                "city": "x",
                "venueId": mine["venue"],
            }
        },
        token=agent,
    )
    assert refused.code == "FORBIDDEN"
