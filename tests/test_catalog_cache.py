"""The in-process cache of event pages and home: served until an admin write invalidates it,
in this process and in others (through the broker); racing reads never store stale values."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlmodel import col, update

from boxoffice.backends.broker import RESYNC, Broker
from boxoffice.models.events import Event
from boxoffice.models.home import Banner
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.services import events
from boxoffice.services.catalog_cache import CatalogCache, event_key
from boxoffice.services.viewer import Viewer
from tests.catalog_factories import make_published_event, make_venue
from tests.helpers import gql, make_tenant, make_user, token_for

TITLE = "query($id: ID!) { event(id: $id) { title } }"


async def _sneak_title(rt: Runtime, event_id: str, title: str) -> None:
    """Change a row behind the services' back (no invalidation)."""
    async with rt.db.write() as session:
        await session.exec(update(Event).where(col(Event.id) == event_id).values(title=title))


async def test_event_page_is_cached_until_an_admin_write(client: httpx.AsyncClient, rt: Runtime):
    # given a published event that has been read once (and a TTL longer than the test)
    rt.catalog_cache.ttl_seconds = 300
    tenant = await make_tenant(rt, "A")
    organizer = await token_for(rt, await make_user(rt, "o@a.example", Role.ORGANIZER, tenant))
    published = await make_published_event(rt, tenant, await make_venue(rt, tenant), "Old")
    assert (await gql(client, TITLE, {"id": published.id})).data["event"]["title"] == "Old"
    # when the row changes without the services, readers still get the cached page
    await _sneak_title(rt, published.id, "Sneaked")
    assert (await gql(client, TITLE, {"id": published.id})).data["event"]["title"] == "Old"
    # and when an organizer edits the event, the next read is fresh
    await gql(
        client,
        'mutation($id: ID!) { updateEvent(id: $id, input: {tags: ["new"]}) { id } }',
        {"id": published.id},
        token=organizer,
    )
    assert (await gql(client, TITLE, {"id": published.id})).data["event"]["title"] == "Sneaked"


async def test_home_is_cached_until_a_banner_changes(client: httpx.AsyncClient, rt: Runtime):
    rt.catalog_cache.ttl_seconds = 300
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    home = "{ home { banners { title } } }"
    assert (await gql(client, home)).data["home"]["banners"] == []
    async with rt.db.write() as session:
        session.add(Banner(title="Sneaked", image_url="https://x/a.png", sort_order=1))
    assert (await gql(client, home)).data["home"]["banners"] == []
    made = await gql(
        client,
        'mutation { createBanner(input: {title: "Spring", imageUrl: "https://x/b.png"}) { id } }',
        token=operator,
    )
    assert not made.errors, made.body
    assert (await gql(client, home)).data["home"]["banners"] == [
        {"title": "Spring"},
        {"title": "Sneaked"},
    ]


@pytest.mark.parametrize("backend", ["pg_redis"], indirect=True)
async def test_invalidation_reaches_other_processes(rt: Runtime):
    # given a second process sharing the database and Redis, both having cached the event
    other = await open_runtime(rt.settings)
    rt.catalog_cache.ttl_seconds = other.catalog_cache.ttl_seconds = 300
    try:
        tenant = await make_tenant(rt, "A")
        published = await make_published_event(rt, tenant, await make_venue(rt, tenant), "Old")
        viewer = Viewer()
        for runtime in (rt, other):
            detail = await events.get_event_detail(
                db=runtime.db, cache=runtime.catalog_cache, viewer=viewer, event_id=published.id
            )
            assert detail.event.title == "Old"
        await _sneak_title(rt, published.id, "New")
        assert rt.catalog_cache.get(event_key(published.id)) is not None
        # when the other process writes the event
        await events.update_event(
            db=other.db,
            cache=other.catalog_cache,
            viewer=Viewer(user_id="op", roles=frozenset({Role.OPERATOR})),
            event_id=published.id,
            tags=["x"],
        )
        # then this process drops its copy as soon as the message arrives
        async with asyncio.timeout(10):
            while rt.catalog_cache.get(event_key(published.id)) is not None:
                await asyncio.sleep(0.01)
        detail = await events.get_event_detail(
            db=rt.db, cache=rt.catalog_cache, viewer=viewer, event_id=published.id
        )
        assert detail.event.title == "New"
    finally:
        await other.close()


async def _cache() -> tuple[CatalogCache, Broker]:
    broker = Broker("memory://")
    await broker.connect()
    cache = CatalogCache(broker)
    await cache.start()
    return cache, broker


async def test_a_read_racing_an_invalidation_is_not_stored():
    cache, broker = await _cache()
    try:
        release = asyncio.Event()

        async def slow_load() -> str:
            await release.wait()
            return "stale"

        reader = asyncio.create_task(cache.get_or_load(event_key("e"), slow_load))
        await asyncio.sleep(0)
        await cache.invalidate(event_ids=["e"])
        release.set()
        assert await reader == "stale"
        assert cache.get(event_key("e")) is None

        async def fresh() -> str:
            return "fresh"

        assert await cache.get_or_load(event_key("e"), fresh) == "fresh"
        assert cache.get(event_key("e")) == "fresh"
    finally:
        await cache.stop()
        await broker.disconnect()


async def test_concurrent_misses_share_one_load():
    cache, broker = await _cache()
    try:
        loads = 0
        gate = asyncio.Event()

        async def load() -> str:
            nonlocal loads
            loads += 1
            await gate.wait()
            return "value"

        readers = [asyncio.create_task(cache.get_or_load(("k",), load)) for _ in range(50)]
        await asyncio.sleep(0)
        gate.set()
        assert await asyncio.gather(*readers) == ["value"] * 50
        assert loads == 1
    finally:
        await cache.stop()
        await broker.disconnect()


async def test_a_failed_load_fails_every_waiter_and_is_not_cached():
    cache, broker = await _cache()
    try:
        gate = asyncio.Event()

        async def load() -> str:
            await gate.wait()
            raise RuntimeError("database down")

        readers = [asyncio.create_task(cache.get_or_load(("k",), load)) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*readers, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        assert cache.get(("k",)) is None
    finally:
        await cache.stop()
        await broker.disconnect()


async def test_resync_drops_everything():
    cache, broker = await _cache()
    try:

        async def load() -> str:
            return "v"

        await cache.get_or_load(event_key("a"), load)
        await cache.get_or_load(("home", None, None), load)
        await broker.publish("bo:catalog:invalidate", RESYNC)
        async with asyncio.timeout(5):
            while cache.get(event_key("a")) is not None:
                await asyncio.sleep(0.01)
        assert cache.get(("home", None, None)) is None
    finally:
        await cache.stop()
        await broker.disconnect()


async def test_a_caller_going_away_does_not_cancel_the_shared_load():
    cache, broker = await _cache()
    try:
        gate = asyncio.Event()

        async def load() -> str:
            await gate.wait()
            return "value"

        first = asyncio.create_task(cache.get_or_load(("k",), load))
        second = asyncio.create_task(cache.get_or_load(("k",), load))
        await asyncio.sleep(0)
        first.cancel()
        gate.set()
        assert await second == "value"
        assert first.cancelled()
        assert cache.get(("k",)) == "value"
    finally:
        await cache.stop()
        await broker.disconnect()
