"""Keyword search, filters, sorts, keyset pages and facets, on both databases (Chinese
included), and correct on PostgreSQL whatever pg_trgm makes of CJK under the lc_ctype."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from sqlmodel import col, update

from boxoffice.cli import migrate
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.models.events import Event, EventStatus
from boxoffice.models.identity import Tenant
from boxoffice.runtime import Runtime
from boxoffice.services import search
from boxoffice.services.search import EventQuery, EventSort, EventSortField
from boxoffice.services.search_text import keyword_condition, normalise
from boxoffice.services.viewer import Viewer
from tests.catalog_factories import make_published_event, make_venue
from tests.helpers import gql, make_tenant
from tests.services import create_database, drop_database

SEARCH = """query($f: EventFilter, $s: EventSort, $first: Int, $after: String) {
  events(filter: $f, sort: $s, first: $first, after: $after) {
    totalCount pageInfo { hasNextPage endCursor }
    edges { cursor node { title } }
    facets { cities { value count } categories { value count } } } }"""


async def _titles(client: httpx.AsyncClient, **filter_: Any) -> list[str]:
    result = await gql(client, SEARCH, {"f": filter_, "first": 50})
    return sorted(edge["node"]["title"] for edge in result.data["events"]["edges"])


@pytest.fixture
async def catalog(rt: Runtime) -> Tenant:
    tenant = await make_tenant(rt, "Promoter")
    arena = await make_venue(rt, tenant, "梅赛德斯奔驰文化中心", "上海")
    bird = await make_venue(rt, tenant, "国家体育场 Bird's Nest", "北京")
    club = await make_venue(rt, tenant, "Laugh Lab 100% Club", "深圳")
    await make_published_event(
        rt,
        tenant,
        arena,
        "周杰伦 嘉年华 2027 巡回演唱会",
        category="CONCERT",
        performers=["周杰伦"],
        tags=["流行", "巡演"],
        price="1280.00",
    )
    await make_published_event(
        rt,
        tenant,
        bird,
        "周深 演唱会 北京站",
        category="CONCERT",
        performers=["周深"],
        price="580.00",
    )
    await make_published_event(
        rt,
        tenant,
        club,
        "Friday Night Stand-up",
        category="STANDUP",
        performers=["Li Lei"],
        tags=["comedy"],
        price="120.00",
    )
    await make_published_event(
        rt, tenant, arena, "话剧《茶馆》", category="THEATRE", price="280.00"
    )
    return tenant


async def test_chinese_keywords_match_every_term(client: httpx.AsyncClient, catalog: Tenant):
    assert await _titles(client, keyword="周杰伦 演唱会") == ["周杰伦 嘉年华 2027 巡回演唱会"]
    assert await _titles(client, keyword="演唱会") == [
        "周杰伦 嘉年华 2027 巡回演唱会",
        "周深 演唱会 北京站",
    ]
    assert await _titles(client, keyword="周深") == ["周深 演唱会 北京站"]
    assert await _titles(client, keyword="茶馆") == ["话剧《茶馆》"]
    assert await _titles(client, keyword="周杰伦 话剧") == []


async def test_keywords_match_performers_venue_tags_and_city(
    client: httpx.AsyncClient, catalog: Tenant
):
    assert await _titles(client, keyword="li lei") == ["Friday Night Stand-up"]
    assert await _titles(client, keyword="奔驰") == [
        "周杰伦 嘉年华 2027 巡回演唱会",
        "话剧《茶馆》",
    ]
    assert await _titles(client, keyword="巡演") == ["周杰伦 嘉年华 2027 巡回演唱会"]
    assert await _titles(client, keyword="北京") == ["周深 演唱会 北京站"]
    assert await _titles(client, keyword="BIRD'S NEST") == ["周深 演唱会 北京站"]
    assert await _titles(client, keyword="ＦＲＩＤＡＹ") == ["Friday Night Stand-up"]  # full width


async def test_like_wildcards_in_keywords_are_literal(client: httpx.AsyncClient, catalog: Tenant):
    assert await _titles(client, keyword="100%") == ["Friday Night Stand-up"]
    assert await _titles(client, keyword="%") == ["Friday Night Stand-up"]
    assert await _titles(client, keyword="_") == []


async def test_city_category_and_date_filters(
    client: httpx.AsyncClient, rt: Runtime, catalog: Tenant
):
    assert await _titles(client, city="上海") == ["周杰伦 嘉年华 2027 巡回演唱会", "话剧《茶馆》"]
    assert await _titles(client, category="CONCERT", city="北京") == ["周深 演唱会 北京站"]
    # a later event only matches a date range covering its session
    venue = await make_venue(rt, catalog, "Later Hall", "上海")
    later = utcnow() + timedelta(days=60)
    await make_published_event(rt, catalog, venue, "Much Later Show", starts_at=later)
    window = {
        "dateFrom": (later - timedelta(hours=1)).isoformat(),
        "dateTo": (later + timedelta(hours=1)).isoformat(),
    }
    assert await _titles(client, **window) == ["Much Later Show"]
    assert await _titles(client, dateTo=(later - timedelta(days=1)).isoformat()) == [
        "Friday Night Stand-up",
        "周杰伦 嘉年华 2027 巡回演唱会",
        "周深 演唱会 北京站",
        "话剧《茶馆》",
    ]


async def test_sorts(client: httpx.AsyncClient, rt: Runtime, catalog: Tenant):
    async def order(sort: dict[str, Any]) -> list[str]:
        result = await gql(client, SEARCH, {"s": sort, "first": 50})
        return [edge["node"]["title"] for edge in result.data["events"]["edges"]]

    by_price = await order({"field": "PRICE"})
    assert by_price == [
        "Friday Night Stand-up",
        "话剧《茶馆》",
        "周深 演唱会 北京站",
        "周杰伦 嘉年华 2027 巡回演唱会",
    ]
    assert await order({"field": "PRICE", "direction": "DESC"}) == by_price[::-1]
    async with rt.db.write() as s:
        await s.exec(update(Event).where(col(Event.title) == "话剧《茶馆》").values(want_count=50))
        await s.exec(
            update(Event).where(col(Event.title) == "周深 演唱会 北京站").values(want_count=9)
        )
    popular = await order({"field": "POPULARITY"})
    assert popular[:2] == ["话剧《茶馆》", "周深 演唱会 北京站"]


async def test_keyset_pages_walk_every_event_once(
    client: httpx.AsyncClient, rt: Runtime, catalog: Tenant
):
    # given eleven events, some sharing a start time (ties broken by id)
    venue = await make_venue(rt, catalog, "Paging Hall")
    starts = utcnow() + timedelta(days=20)
    for i in range(7):
        await make_published_event(
            rt, catalog, venue, f"Paged {i}", starts_at=starts + timedelta(hours=i // 3)
        )
    for sort in (
        {"field": "START_TIME"},
        {"field": "PRICE", "direction": "DESC"},
        {"field": "POPULARITY"},
        {"field": "NEWEST"},
    ):
        seen: list[str] = []
        after = None
        pages = 0
        while True:
            result = await gql(client, SEARCH, {"s": sort, "first": 3, "after": after})
            events = result.data["events"]
            assert events["totalCount"] == 11
            seen.extend(edge["node"]["title"] for edge in events["edges"])
            pages += 1
            if not events["pageInfo"]["hasNextPage"]:
                break
            after = events["pageInfo"]["endCursor"]
        assert pages == 4 and len(seen) == 11 and len(set(seen)) == 11, sort


async def test_facets_count_cities_and_categories(client: httpx.AsyncClient, catalog: Tenant):
    result = await gql(client, SEARCH, {"f": {"city": "上海"}})
    facets = result.data["events"]["facets"]
    # cities are counted without the city criterion, so the other cities show
    assert {f["value"]: f["count"] for f in facets["cities"]} == {"上海": 2, "北京": 1, "深圳": 1}
    # categories under the current filter
    assert {f["value"]: f["count"] for f in facets["categories"]} == {"CONCERT": 1, "THEATRE": 1}
    keyword = await gql(client, SEARCH, {"f": {"keyword": "演唱会"}})
    assert {f["value"]: f["count"] for f in keyword.data["events"]["facets"]["cities"]} == {
        "上海": 1,
        "北京": 1,
    }


async def test_drafts_and_ended_events_stay_out_of_the_default_list(
    client: httpx.AsyncClient, rt: Runtime, catalog: Tenant
):
    venue = await make_venue(rt, catalog, "Quiet Hall")
    from tests.catalog_factories import make_event

    await make_event(rt, catalog, venue, "Secret Draft")
    async with rt.db.write() as s:
        await s.exec(
            update(Event)
            .where(col(Event.title) == "话剧《茶馆》")
            .values(ends_at=utcnow() - timedelta(minutes=1))
        )
    titles = await _titles(client)
    assert "Secret Draft" not in titles and "话剧《茶馆》" not in titles
    assert await _titles(client, status="ENDED") == ["话剧《茶馆》"]
    assert await _titles(client, status="DRAFT") == []


def test_normalise_folds_width_case_and_spaces():
    assert normalise("  ＦＲＩＤＡＹ\tNight  周杰伦 ") == "friday night 周杰伦"


@pytest.mark.pg_redis
async def test_search_is_correct_under_a_c_lc_ctype():
    """Under lc_ctype C, pg_trgm extracts no trigrams from CJK text, so the GIN index cannot
    narrow a Chinese search. The search must still find the same rows (PostgreSQL rechecks
    the LIKE on every candidate)."""
    # given a database created with a C lc_ctype, migrated, with a Chinese title
    database = await create_database("bo_c_ctype")
    admin = await asyncpg.connect(database.admin_url)
    try:
        await admin.execute(f'DROP DATABASE "{database.name}"')
        await admin.execute(
            f"CREATE DATABASE \"{database.name}\" TEMPLATE template0 ENCODING 'UTF8' "
            "LC_CTYPE 'C' LC_COLLATE 'C'"
        )
    finally:
        await admin.close()
    try:
        await asyncio.to_thread(migrate, database.url)
        conn = await asyncpg.connect(database.dsn)
        try:
            assert await conn.fetchval("SHOW lc_ctype") == "C"
            assert await conn.fetchval("SELECT show_trgm('周杰伦')") == []
            now = utcnow()
            await conn.execute(
                "INSERT INTO tenants (id, name, theme, features, contact, status, currency, "
                "created_at, updated_at) VALUES ('t', 'T', '{}', '{}', '{}', 'ACTIVE', 'CNY', "
                "$1, $1)",
                now,
            )
            await conn.execute(
                "INSERT INTO venues (id, tenant_id, name, city, address, capacity, created_at, "
                "updated_at) VALUES ('v', 't', 'V', '上海', 'x', 0, $1, $1)",
                now,
            )
            for i, title in enumerate(["周杰伦 嘉年华 2027 巡回演唱会", "周深 演唱会", "other"]):
                await conn.execute(
                    "INSERT INTO events (id, tenant_id, venue_id, title, description, category, "
                    "city, performers, tags, status, view_count, want_count, search_text, "
                    "sale_starts_at, ends_at, created_at, updated_at) VALUES ($1, 't', 'v', $2, "
                    "'', 'CONCERT', '上海', '[]', '[]', 'ON_SALE', 0, 0, $3, $4, $5, $4, $4)",
                    f"e{i}",
                    title,
                    normalise(title),
                    now - timedelta(days=1),
                    now + timedelta(days=1),
                )
            await conn.execute("SET enable_seqscan = off")
            plan = await conn.fetch(
                "EXPLAIN SELECT id FROM events WHERE search_text LIKE '%周杰伦%'"
            )
            assert "ix_events_search_text_trgm" in "\n".join(r[0] for r in plan)
        finally:
            await conn.close()
        db = Database(database.url)
        try:
            # when searching through the service
            page = await search.search_events(
                db=db,
                viewer=Viewer(),
                query=EventQuery(keyword="周杰伦 演唱会").checked(),
                sort=EventSort(EventSortField.START_TIME),
            )
            # then the right row comes back
            assert [e.title for e in page.items] == ["周杰伦 嘉年华 2027 巡回演唱会"]
            async with db.read() as session:
                rows = await session.exec(
                    Event.__table__.select().where(keyword_condition(["演唱会"]))  # type: ignore[attr-defined]
                )
                assert sorted(r.id for r in rows.all()) == ["e0", "e1"]
        finally:
            await db.dispose()
    finally:
        await drop_database(database)


async def test_service_search_matches_graphql(rt: Runtime, catalog: Tenant):
    page = await search.search_events(
        db=rt.db,
        viewer=Viewer(),
        query=EventQuery(keyword="演唱会", statuses=[EventStatus.ON_SALE]).checked(),
    )
    assert len(page.items) == 2 and not page.has_next_page
