"""The anonymous response cache: event pages served again with live availability refilled,
statuses exact at their boundaries, catalog edits seen at once, signed-in viewers and varying
documents never cached."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from graphql import parse

from boxoffice.clock import utcnow
from boxoffice.response_cache import is_cacheable
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.schema import build_schema
from boxoffice.services import events
from tests.catalog_factories import (
    OPERATOR,
    make_event,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import gql, make_tenant, make_user, token_for
from tests.order_factories import hold_for, on_sale

EVENT = """query Page($id: ID!) { event(id: $id) { id title status
  sessions { id status tiers { id name available price { amount } } } } }"""


def tiers_of(data: dict[str, object]) -> dict[str, int]:
    event = data["event"]
    assert isinstance(event, dict)
    return {
        tier["name"]: tier["available"]
        for session in event["sessions"]
        for tier in session["tiers"]
    }


@pytest.mark.settings(response_cache_seconds=60)  # not the TTL under test: no expiry mid-test
async def test_hits_refill_live_availability(client: httpx.AsyncClient, rt: Runtime):
    # given an event on sale, asked for twice without a token
    sale = await on_sale(rt, ga_capacity=10)
    first = await gql(client, EVENT, {"id": sale.event.id})
    hits = rt.responses.hits
    second = await gql(client, EVENT, {"id": sale.event.id})
    assert rt.responses.hits == hits + 1
    assert second.body == first.body
    assert tiers_of(first.data)["GA"] == 10
    # when someone holds 3 GA tickets
    buyer = await make_user(rt, "buyer@example.com")
    await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=3)
    # then the next cached answer has the live count, and is still a hit
    third = await gql(client, EVENT, {"id": sale.event.id})
    assert rt.responses.hits == hits + 2
    assert tiers_of(third.data)["GA"] == 7
    assert third.data["event"]["title"] == first.data["event"]["title"]


async def test_hits_count_views(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    before = rt.view_counts.pending
    for _ in range(3):
        await gql(client, EVENT, {"id": sale.event.id})
    assert rt.view_counts.pending == before + 3


@pytest.mark.settings(response_cache_seconds=60)  # not the TTL under test: no expiry mid-test
async def test_catalog_edits_are_seen_at_once(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    await gql(client, EVENT, {"id": sale.event.id})
    await events.update_event(
        db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=sale.event.id, title="Renamed"
    )
    after = await gql(client, EVENT, {"id": sale.event.id})
    assert after.data["event"]["title"] == "Renamed"


@pytest.mark.settings(response_cache_seconds=60)
async def test_statuses_flip_at_their_boundary(client: httpx.AsyncClient, rt: Runtime):
    # given a session whose sale opens in a moment, cached for far longer than that
    tenant = await make_tenant(rt, "Boundary Club")
    venue = await make_venue(rt, tenant)
    event = await make_event(rt, tenant, venue, "Opens Soon")
    opens = utcnow() + timedelta(seconds=1.5)
    session = await make_session(rt, event, sale_starts_at=opens)
    await make_tier(rt, session)
    await publish(rt, event)
    before = await gql(client, EVENT, {"id": event.id})
    assert before.data["event"]["sessions"][0]["status"] == "SCHEDULED"
    assert (await gql(client, EVENT, {"id": event.id})).body == before.body
    # when the sale's second passes
    await asyncio.sleep(max(0.0, (opens - utcnow()).total_seconds()) + 0.1)
    # then the answer says ON_SALE although the entry's time to live has not run out
    after = await gql(client, EVENT, {"id": event.id})
    assert after.data["event"]["sessions"][0]["status"] == "ON_SALE"
    assert after.data["event"]["status"] == "ON_SALE"


async def test_signed_in_viewers_are_not_cached(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    token = await token_for(rt, user)
    hits, size = rt.responses.hits, len(rt.responses)
    for _ in range(2):
        assert (await gql(client, EVENT, {"id": sale.event.id}, token=token)).data["event"]
    assert (rt.responses.hits, len(rt.responses)) == (hits, size)


async def test_varying_documents_are_not_cached_and_stay_live(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a query for seat statuses (live, not refilled)
    sale = await on_sale(rt)
    query = """query($id: ID!) { event(id: $id) { sessions { availability { tiers { tierId available } } } } }"""
    await gql(client, query, {"id": sale.event.id})
    assert len(rt.responses) == 0
    buyer = await make_user(rt, "seats@example.com")
    await hold_for(rt, buyer, sale.session, tier_id=sale.ga.id, quantity=2)
    again = await gql(client, query, {"id": sale.event.id})
    counts = {
        t["tierId"]: t["available"]
        for t in again.data["event"]["sessions"][0]["availability"]["tiers"]
    }
    assert counts[sale.ga.id] == 8


@pytest.mark.settings(response_cache_seconds=0)
async def test_it_can_be_turned_off(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt)
    for _ in range(2):
        await gql(client, EVENT, {"id": sale.event.id})
    assert (rt.responses.hits, len(rt.responses)) == (0, 0)


@pytest.mark.parametrize(
    ("query", "cacheable"),
    [
        (EVENT, True),
        ("query { home { banners { id title } upcoming { id status } } }", True),
        ("query($id: ID!) { event(id: $id) { ...E } } fragment E on Event { id title }", True),
        ("query($id: ID!) { event(id: $id) { id sessions { seatMap { id } } } }", False),
        ("query($id: ID!) { event(id: $id) { id tenant { auditOpinion } } }", False),
        ("query { me { id } }", False),
        ("query($id: ID!) { event(id: $id) { id } me { id } }", False),
        ('mutation { logout(refreshToken: "x") }', False),
    ],
)
def test_which_documents_are_cacheable(query: str, cacheable: bool):
    schema = build_schema()._schema
    assert is_cacheable(schema, parse(query)) is cacheable


@pytest.mark.parametrize("backend", ["pg_redis"], indirect=True)
@pytest.mark.settings(response_cache_seconds=60)
async def test_edits_in_another_process_drop_cached_answers(client: httpx.AsyncClient, rt: Runtime):
    # given this process has cached an event page, and a second process shares the stores
    sale = await on_sale(rt)
    await gql(client, EVENT, {"id": sale.event.id})
    assert len(rt.responses) == 1
    other = await open_runtime(rt.settings)
    try:
        # when the other process renames the event
        await events.update_event(
            db=other.db,
            cache=other.catalog_cache,
            viewer=OPERATOR,
            event_id=sale.event.id,
            title="Renamed elsewhere",
        )
        # then this process drops its answer when the invalidation arrives
        async with asyncio.timeout(10):
            while len(rt.responses):
                await asyncio.sleep(0.01)
        after = await gql(client, EVENT, {"id": sale.event.id})
        assert after.data["event"]["title"] == "Renamed elsewhere"
    finally:
        await other.close()
