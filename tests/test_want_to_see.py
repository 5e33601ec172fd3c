"""想看 marks and view counts: counters that move exactly once per real change."""

from __future__ import annotations

import asyncio

import httpx

from boxoffice.models.events import Event
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.services import events
from tests.catalog_factories import OPERATOR, make_event, make_published_event, make_venue
from tests.helpers import gql, make_tenant, make_user, token_for, viewer_for

MARK = """mutation($e: ID!, $w: Boolean!) { markWantToSee(eventId: $e, want: $w) {
  wantCount wantToSee } }"""
MINE = """{ myWantToSee { totalCount edges { node { title wantToSee } } } }"""


async def test_marking_and_unmarking(client: httpx.AsyncClient, rt: Runtime):
    tenant = await make_tenant(rt, "A")
    venue = await make_venue(rt, tenant)
    show = await make_published_event(rt, tenant, venue, "Show")
    await make_published_event(rt, tenant, venue, "Other")
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    assert (await gql(client, MARK, {"e": show.id, "w": True}, token=fan)).data[
        "markWantToSee"
    ] == {"wantCount": 1, "wantToSee": True}
    # repeating is harmless
    assert (await gql(client, MARK, {"e": show.id, "w": True}, token=fan)).data["markWantToSee"][
        "wantCount"
    ] == 1
    mine = (await gql(client, MINE, token=fan)).data["myWantToSee"]
    assert mine["totalCount"] == 1
    assert mine["edges"][0]["node"] == {"title": "Show", "wantToSee": True}
    # a cancelled event stays on the list (the fan wants to know)
    await events.cancel_event(db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=show.id)
    cancelled = (await gql(client, MINE, token=fan)).data["myWantToSee"]
    assert cancelled["totalCount"] == 1
    unmarked = await gql(client, MARK, {"e": show.id, "w": False}, token=fan)

    assert unmarked.data["markWantToSee"] == {"wantCount": 0, "wantToSee": False}
    assert (await gql(client, MARK, {"e": show.id, "w": False}, token=fan)).data["markWantToSee"][
        "wantCount"
    ] == 0
    assert (await gql(client, MINE, token=fan)).data["myWantToSee"]["totalCount"] == 0
    assert (await gql(client, MINE)).code == "UNAUTHENTICATED"
    draft = await make_event(rt, tenant, venue, "Draft")
    assert (await gql(client, MARK, {"e": draft.id, "w": True}, token=fan)).code == "NOT_FOUND"


async def test_concurrent_marks_count_exactly(rt: Runtime):
    # given an event and twelve fans
    tenant = await make_tenant(rt, "A")
    show = await make_published_event(rt, tenant, await make_venue(rt, tenant))
    fans = [
        await viewer_for(rt, await make_user(rt, f"fan{i}@example.com", Role.CUSTOMER))
        for i in range(12)
    ]
    # when each marks twice at once, and the first four then unmark at once
    await asyncio.gather(
        *(
            events.mark_want_to_see(db=rt.db, viewer=fan, event_id=show.id, want=True)
            for fan in fans + fans
        )
    )
    await asyncio.gather(
        *(
            events.mark_want_to_see(db=rt.db, viewer=fan, event_id=show.id, want=False)
            for fan in fans[:4]
        )
    )
    # then the counter equals the marks
    async with rt.db.read() as s:
        stored = await s.get(Event, show.id)
    assert stored is not None and stored.want_count == 8


async def test_views_are_counted_off_the_hot_path(client: httpx.AsyncClient, rt: Runtime):
    await rt.view_counts.stop()  # no periodic flush during the test: we flush by hand
    tenant = await make_tenant(rt, "A")
    show = await make_published_event(rt, tenant, await make_venue(rt, tenant))
    detail = "query($id: ID!) { event(id: $id) { viewCount } }"
    for _ in range(5):
        await gql(client, detail, {"id": show.id})
    # nothing written yet: views wait in memory
    async with rt.db.read() as s:
        stored = await s.get(Event, show.id)
    assert stored is not None and stored.view_count == 0
    assert rt.view_counts.pending == 5
    assert await rt.view_counts.flush() == 5
    async with rt.db.read() as s:
        stored = await s.get(Event, show.id)
    assert stored is not None and stored.view_count == 5
