"""The ``changes`` feed: every event of the tenant in order, resumable from a cursor, scoped to
the tenant, and never skipping an event whose transaction commits late."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from boxoffice.clock import utcnow
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.services import change_feed
from boxoffice.services.outbox import emit
from tests.helpers import gql, make_tenant, make_user, token_for, viewer_for
from tests.outbox_events import emit_event

CHANGES = """
query($since: String, $first: Int, $t: ID) { changes(since: $since, first: $first, tenantId: $t) {
  cursor hasMore events { id type createdAt tenantId data } } }"""

TOPICS = [
    "order.created",
    "order.paid",
    "ticket.issued",
    "ticket.checked_in",
    "refund.requested",
    "refund.completed",
    "session.sold_out",
]


async def read_all(
    client: httpx.AsyncClient, token: str, since: str | None = None, first: int = 3, **extra: Any
) -> tuple[list[dict[str, Any]], str]:
    events: list[dict[str, Any]] = []
    while True:
        page = (
            await gql(client, CHANGES, {"since": since, "first": first, **extra}, token=token)
        ).data["changes"]
        events += page["events"]
        since = page["cursor"]
        if not page["hasMore"]:
            return events, since


async def test_changes_returns_every_event_in_order_and_resumes(
    client: httpx.AsyncClient, rt: Runtime
):
    # given events of a tenant, interleaved with another tenant's and a non-webhook topic
    tenant, other = await make_tenant(rt, "Mine"), await make_tenant(rt, "Theirs")
    token = await token_for(rt, await make_user(rt, "o@mine.test", Role.ORGANIZER, tenant))
    ours = []
    for i, topic in enumerate(TOPICS):
        ours.append(await emit_event(rt, topic, {"id": f"r{i}", "n": i}, tenant_id=tenant.id))
        await emit_event(rt, "order.paid", {"id": f"x{i}"}, tenant_id=other.id)
    await emit_event(rt, "queue.admitted", {"id": "q"}, tenant_id=tenant.id)
    # when the organizer reads the feed three at a time
    events, cursor = await read_all(client, token)
    # then they get exactly their events, in order, as webhooks would carry them
    assert [e["id"] for e in events] == [e.event_id for e in ours]
    assert [e["type"] for e in events] == TOPICS
    assert [e["data"]["n"] for e in events] == list(range(len(TOPICS)))
    assert {e["tenantId"] for e in events} == {tenant.id}
    # when more happens and they resume from the cursor
    later = [
        await emit_event(rt, "order.expired", {"id": f"l{i}"}, tenant_id=tenant.id)
        for i in range(2)
    ]
    resumed, cursor = await read_all(client, token, since=cursor)
    # then only the new events come
    assert [e["id"] for e in resumed] == [e.event_id for e in later]
    # and an idle read returns nothing, with a cursor that still works
    idle = (await gql(client, CHANGES, {"since": cursor}, token=token)).data["changes"]
    assert idle["events"] == [] and not idle["hasMore"]
    last = await emit_event(rt, "order.cancelled", {"id": "c"}, tenant_id=tenant.id)
    after_idle, _ = await read_all(client, token, since=idle["cursor"])
    assert [e["id"] for e in after_idle] == [last.event_id]


async def test_operators_read_every_tenant_and_scoping_holds(
    client: httpx.AsyncClient, rt: Runtime
):
    tenant, other = await make_tenant(rt, "A"), await make_tenant(rt, "B")
    organizer = await token_for(rt, await make_user(rt, "o@a.test", Role.ORGANIZER, tenant))
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    customer = await token_for(rt, await make_user(rt, "c@example.com"))
    a = await emit_event(rt, "order.paid", tenant_id=tenant.id)
    b = await emit_event(rt, "order.paid", tenant_id=other.id)
    platform = await emit_event(rt, "event.cancelled", {"id": "e"}, tenant_id=None)
    everything, _ = await read_all(client, operator)
    assert [e["id"] for e in everything] == [a.event_id, b.event_id, platform.event_id]
    only_b, _ = await read_all(client, operator, t=other.id)
    assert [e["id"] for e in only_b] == [b.event_id]
    assert (await gql(client, CHANGES, {"t": other.id}, token=organizer)).code == "NOT_FOUND"
    assert (await gql(client, CHANGES, token=customer)).code == "FORBIDDEN"
    assert (await gql(client, CHANGES)).code == "UNAUTHENTICATED"
    bad = await gql(client, CHANGES, {"since": "bm90IGEgY3Vyc29y"}, token=organizer)
    assert bad.code == "BAD_USER_INPUT" and bad.error["extensions"]["field"] == "since"


async def test_the_cursor_remembers_recent_events_until_they_settle(rt: Runtime):
    # given three fresh events
    tenant = await make_tenant(rt)
    viewer = await viewer_for(rt, await make_user(rt, "o@t.test", Role.ORGANIZER, tenant))
    events = [await emit_event(rt, "order.paid", tenant_id=tenant.id) for _ in range(3)]
    now = utcnow()
    # when they are read at once
    page = await change_feed.changes(db=rt.db, viewer=viewer, now=now)
    # then the cursor stays before them, remembering them
    assert [e.event_id for e in page.events] == [e.event_id for e in events]
    base, seen = change_feed.decode_cursor(page.cursor)
    assert base < (events[0].seq or 0)
    assert seen == {e.seq for e in events}
    # and once they are older than the visibility horizon it moves past them and forgets them
    settled = await change_feed.changes(
        db=rt.db, viewer=viewer, since=page.cursor, now=now + timedelta(minutes=2)
    )
    assert settled.events == []
    assert change_feed.decode_cursor(settled.cursor) == (events[-1].seq, set())


async def test_a_late_commit_is_not_skipped(rt: Runtime):
    if rt.db.is_sqlite:
        pytest.skip("SQLite serialises writers: no transaction can commit past another")
    tenant = await make_tenant(rt)
    viewer = await viewer_for(rt, await make_user(rt, "o@t.test", Role.ORGANIZER, tenant))
    # given a transaction that took a sequence number and has not committed yet
    async with rt.db.write() as slow:
        late = emit(
            slow,
            topic="order.paid",
            aggregate_type="Order",
            aggregate_id="late",
            payload={"resource": {"id": "late"}},
            tenant_id=tenant.id,
        )
        await slow.flush()
        # while a later one commits and is read
        early = await emit_event(rt, "order.paid", tenant_id=tenant.id)
        assert (early.seq or 0) > (late.seq or 0)
        first = await change_feed.changes(db=rt.db, viewer=viewer)
        assert [e.event_id for e in first.events] == [early.event_id]
    # when the slow one commits and the reader continues from its cursor
    second = await change_feed.changes(db=rt.db, viewer=viewer, since=first.cursor)
    # then it is handed out, once
    assert [e.event_id for e in second.events] == [late.event_id]
    third = await change_feed.changes(db=rt.db, viewer=viewer, since=second.cursor)
    assert third.events == []
