"""N+1 guard: a page of events with sessions, tiers and their nested fields costs a small,
constant number of SQL statements, whatever the page size."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import event

from boxoffice.models.events import EventSession
from boxoffice.runtime import Runtime
from tests.catalog_factories import (
    make_event,
    make_published_event,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import gql, make_tenant, make_user
from tests.order_factories import hold_for

PAGE = """query($first: Int) { events(first: $first) { totalCount
  edges { node { id title status tenant { name } venue { name city }
    priceRange { min { amount } max { amount } }
    sessions { id startsAt status queueEnabled
      tiers { id name price { amount currency } capacity available seated limitPerOrder }
      availability { version tiers { tierId available } } } } } } }"""
# 9 for the catalog page itself, 1 for tier order, and 5 that load the seat ledgers of the
# page's sessions on first read (rules: 3, orders and allocations: 2), batched whatever the size
MAX_STATEMENTS = 15


@contextmanager
def counting(rt: Runtime) -> Iterator[list[str]]:
    """Every SELECT sent to either engine while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    engines = {rt.db.write_engine.sync_engine, rt.db.read_engine.sync_engine}
    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


async def test_a_page_of_events_costs_a_constant_number_of_statements(
    client: httpx.AsyncClient, rt: Runtime
):
    # given 25 published events over two tenants, each with two sessions of two tiers
    tenants = [await make_tenant(rt, "A"), await make_tenant(rt, "B")]
    for i in range(25):
        tenant = tenants[i % 2]
        venue = await make_venue(rt, tenant, f"Hall {i}")
        ev = await make_event(rt, tenant, venue, f"Show {i}")
        for _ in range(2):
            session = await make_session(rt, ev)
            await make_tier(rt, session, "Front", price="380.00")
            await make_tier(rt, session, "Back", price="180.00")
        await publish(rt, ev)
    # when a page of 5 and a page of 20 are read with everything nested
    with counting(rt) as small:
        five = await gql(client, PAGE, {"first": 5})
    with counting(rt) as large:
        twenty = await gql(client, PAGE, {"first": 20})
    # then both are complete
    edges = twenty.data["events"]["edges"]
    assert len(five.data["events"]["edges"]) == 5 and len(edges) == 20
    assert all(len(e["node"]["sessions"]) == 2 for e in edges)
    assert all(len(s["tiers"]) == 2 for e in edges for s in e["node"]["sessions"])
    assert all(
        t["available"] == 100 for e in edges for s in e["node"]["sessions"] for t in s["tiers"]
    )
    # and cost the same few statements, whatever the page size
    assert len(large) == len(small), "\n\n".join(large)
    assert len(large) <= MAX_STATEMENTS, "\n\n".join(large)


async def test_event_page_is_served_from_the_cache_but_availability_is_not(
    client: httpx.AsyncClient, rt: Runtime
):
    rt.catalog_cache.ttl_seconds = 300
    tenant = await make_tenant(rt, "A")
    published = await make_published_event(rt, tenant, await make_venue(rt, tenant))
    detail = """query($id: ID!) { event(id: $id) { id title venue { name }
      sessions { id tiers { id name available } } } }"""
    await gql(client, detail, {"id": published.id})
    with counting(rt) as statements:
        again = await gql(client, detail, {"id": published.id})
    assert again.data["event"]["sessions"][0]["tiers"][0]["available"] == 100
    # a warm page reads nothing from the database: the event from the cache, the tier counts
    # from the seat ledger and the cached session rules
    assert statements == []
    # yet availability is live: a hold shows at once while the page stays cached
    session_id = again.data["event"]["sessions"][0]["id"]
    tier_id = again.data["event"]["sessions"][0]["tiers"][0]["id"]
    buyer = await make_user(rt, "buyer@example.com")
    await hold_for(rt, buyer, await _session(rt, session_id), tier_id=tier_id, quantity=3)
    after = await gql(client, detail, {"id": published.id})
    assert after.data["event"]["sessions"][0]["tiers"][0]["available"] == 97


async def _session(rt: Runtime, session_id: str) -> EventSession:
    async with rt.db.read() as session:
        found = await session.get(EventSession, session_id)
    assert found is not None
    return found
