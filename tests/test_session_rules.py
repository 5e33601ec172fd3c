"""The per-process session rules cache: a stale entry answers at once and is re-read behind
the request; an event's sessions can be read before anyone holds; invalidation still wins."""

from __future__ import annotations

import time

import pytest

from boxoffice.errors import NotFound
from boxoffice.models.events import Event, EventSession
from boxoffice.runtime import Runtime
from boxoffice.services.session_rules import SessionRulesCache
from tests.catalog_factories import make_event, make_session, make_tier, make_venue
from tests.helpers import make_tenant


async def a_session(rt: Runtime, title: str) -> EventSession:
    tenant = await make_tenant(rt, f"{title} Club")
    event = await make_event(rt, tenant, await make_venue(rt, tenant, f"{title} Hall"), title)
    session = await make_session(rt, event)
    await make_tier(rt, session, "GA", capacity=10)
    return session


async def set_limit(rt: Runtime, session_id: str, limit: int) -> None:
    """Change the row behind the cache's back (no invalidation message)."""
    async with rt.db.write() as db:
        row = await db.get(EventSession, session_id)
        assert row is not None
        row.purchase_limit = limit
        db.add(row)


async def test_a_stale_entry_answers_at_once_and_is_read_again_behind(rt: Runtime):
    # given rules cached by a cache whose entries go stale at once
    cache = SessionRulesCache(rt.db, ttl_seconds=0.0, stale_seconds=60.0)
    session = await a_session(rt, "Stale Show")
    await set_limit(rt, session.id, 4)
    assert (await cache.get(session.id)).purchase_limit == 4
    # when the row changes without an invalidation and the rules are asked for
    await set_limit(rt, session.id, 2)
    answered = await cache.get(session.id)
    # then the cached rules answered (no wait for the database), and the read behind it
    # brings the change to the next request
    assert answered.purchase_limit == 4
    await cache.settled()
    assert (await cache.get(session.id)).purchase_limit == 2
    await cache.settled()  # that get started another read behind it (nothing is fresh here)


async def test_an_entry_older_than_the_stale_bound_waits_for_the_database(rt: Runtime):
    cache = SessionRulesCache(rt.db, ttl_seconds=0.0, stale_seconds=0.0)
    session = await a_session(rt, "Old Show")
    await set_limit(rt, session.id, 4)
    await cache.get(session.id)
    await set_limit(rt, session.id, 3)
    assert (await cache.get(session.id)).purchase_limit == 3


async def test_an_invalidation_drops_a_stale_entry_at_once(rt: Runtime):
    cache = SessionRulesCache(rt.db, ttl_seconds=60.0)
    session = await a_session(rt, "Edited Show")
    await set_limit(rt, session.id, 4)
    await cache.get(session.id)
    await set_limit(rt, session.id, 1)
    cache.drop_events({session.event_id})
    assert (await cache.get(session.id)).purchase_limit == 1


async def test_warming_an_event_reads_its_sessions_before_anyone_asks(rt: Runtime):
    # given an event with two sessions
    cache = SessionRulesCache(rt.db)
    first = await a_session(rt, "Warm Show")
    event_id = first.event_id
    async with rt.db.read() as db:
        event = await db.get(Event, event_id)
    assert event is not None
    second = await make_session(rt, event)
    # when the event is warmed (twice: the second call within the TTL reads nothing)
    cache.warm_event(event_id)
    cache.warm_event(event_id)
    await cache.settled()
    # then both sessions answer from memory, read before the asking began
    asked_at = time.monotonic()
    for session in (first, second):
        rules = await cache.get(session.id)
        assert rules.event_id == event_id
        assert rules.loaded_at < asked_at


async def test_an_unknown_session_is_not_found_and_not_remembered(rt: Runtime):
    cache = SessionRulesCache(rt.db)
    with pytest.raises(NotFound):
        await cache.get("01NOSUCHSESSION000000000000")
    with pytest.raises(NotFound):
        await cache.get("01NOSUCHSESSION000000000000")


async def test_an_edit_to_a_warmed_event_is_read_again_before_anyone_asks(rt: Runtime):
    # given a warmed event (buyers in its waiting room)
    cache = SessionRulesCache(rt.db)
    session = await a_session(rt, "Moved Show")
    await set_limit(rt, session.id, 4)
    cache.warm_event(session.event_id)
    await cache.settled()
    # when the organizer edits it (the invalidation arrives)
    await set_limit(rt, session.id, 2)
    cache.drop_events({session.event_id})
    await cache.settled()
    # then the new rules were read behind the invalidation, before the next hold asked
    asked_at = time.monotonic()
    rules = await cache.get(session.id)
    assert rules.purchase_limit == 2
    assert rules.loaded_at < asked_at
