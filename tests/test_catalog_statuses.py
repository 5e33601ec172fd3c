"""Statuses follow the clock exactly on read; the job writes them back (and SOLD_OUT)."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import col, select, update

from boxoffice.clock import utcnow
from boxoffice.jobs import JOBS, refresh_catalog_statuses
from boxoffice.models.events import (
    Event,
    EventSession,
    EventStatus,
    SessionStatus,
    TicketTier,
)
from boxoffice.runtime import Runtime
from boxoffice.services.catalog_statuses import event_status, session_status
from tests.catalog_factories import (
    make_event,
    make_published_event,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import gql, make_tenant


def test_event_status_at_its_boundaries():
    now = utcnow()
    event = Event(
        tenant_id="t",
        venue_id="v",
        title="x",
        city="x",
        status=EventStatus.UPCOMING,
        sale_starts_at=now,
        ends_at=now + timedelta(hours=2),
    )
    tick = timedelta(microseconds=1)
    assert event_status(event, now - tick) == EventStatus.UPCOMING
    assert event_status(event, now) == EventStatus.ON_SALE
    assert event_status(event, now + timedelta(hours=2) - tick) == EventStatus.ON_SALE
    assert event_status(event, now + timedelta(hours=2)) == EventStatus.ENDED
    event.status = EventStatus.SOLD_OUT
    assert event_status(event, now) == EventStatus.SOLD_OUT
    assert event_status(event, now + timedelta(hours=3)) == EventStatus.ENDED
    for final in (EventStatus.DRAFT, EventStatus.CANCELLED):
        event.status = final
        assert event_status(event, now + timedelta(days=9)) == final


def test_session_status_at_its_boundaries():
    now = utcnow()
    session = EventSession(
        tenant_id="t",
        event_id="e",
        starts_at=now + timedelta(hours=1),
        ends_at=now + timedelta(hours=3),
        sale_starts_at=now,
    )
    tick = timedelta(microseconds=1)
    assert session_status(session, now - tick) == SessionStatus.SCHEDULED
    assert session_status(session, now) == SessionStatus.ON_SALE
    assert session_status(session, now + timedelta(hours=1)) == SessionStatus.SALE_CLOSED
    assert session_status(session, now + timedelta(hours=3)) == SessionStatus.ENDED
    session.sale_ends_at = now + timedelta(hours=2)
    assert session_status(session, now + timedelta(hours=1)) == SessionStatus.ON_SALE
    session.status = SessionStatus.CANCELLED
    assert session_status(session, now) == SessionStatus.CANCELLED


async def test_publish_is_upcoming_before_the_sale_and_listed_on_sale_the_moment_it_opens(
    client: httpx.AsyncClient, rt: Runtime
):
    # given an event published before its sale opens
    tenant = await make_tenant(rt, "A")
    event = await make_event(rt, tenant, await make_venue(rt, tenant))
    session = await make_session(rt, event, sale_starts_at=utcnow() + timedelta(hours=1))
    await make_tier(rt, session)
    published = await publish(rt, event)
    assert published.status == EventStatus.UPCOMING
    on_sale = "{ events(filter: {status: ON_SALE}) { totalCount } }"
    upcoming = "{ events(filter: {status: UPCOMING}) { edges { node { status } } } }"
    assert (await gql(client, on_sale)).data["events"]["totalCount"] == 0
    assert (await gql(client, upcoming)).data["events"]["edges"] == [
        {"node": {"status": "UPCOMING"}}
    ]
    # when the sale start passes (no job has run: the stored status is still UPCOMING)
    async with rt.db.write() as s:
        past = utcnow() - timedelta(seconds=1)
        await s.exec(
            update(EventSession)
            .where(col(EventSession.id) == session.id)
            .values(sale_starts_at=past)
        )
        await s.exec(update(Event).where(col(Event.id) == event.id).values(sale_starts_at=past))
    # then reads and filters already say ON_SALE
    assert (await gql(client, on_sale)).data["events"]["totalCount"] == 1
    assert (await gql(client, upcoming)).data["events"]["edges"] == []
    # and the job writes it down
    assert await refresh_catalog_statuses(rt) >= 2
    async with rt.db.read() as s:
        stored = await s.get(Event, event.id)
        stored_session = await s.get(EventSession, session.id)
    assert stored is not None and stored.status == EventStatus.ON_SALE
    assert stored_session is not None and stored_session.status == SessionStatus.ON_SALE


async def test_job_marks_sold_out_ended_and_back(rt: Runtime):
    # given two published events on sale
    tenant = await make_tenant(rt, "A")
    venue = await make_venue(rt, tenant)
    full = await make_published_event(rt, tenant, venue, "Full")
    past = await make_published_event(rt, tenant, venue, "Past")
    # when one sells every ticket and the other's last session ends
    async with rt.db.write() as s:
        session_ids = (
            await s.exec(select(EventSession.id).where(EventSession.event_id == full.id))
        ).all()
        await s.exec(
            update(TicketTier)
            .where(col(TicketTier.session_id).in_(session_ids))
            .values(reserved=TicketTier.capacity)
        )
        await s.exec(
            update(Event)
            .where(col(Event.id) == past.id)
            .values(ends_at=utcnow() - timedelta(seconds=1))
        )
        await s.exec(
            update(EventSession)
            .where(col(EventSession.event_id) == past.id)
            .values(
                starts_at=utcnow() - timedelta(hours=2),
                ends_at=utcnow() - timedelta(seconds=1),
                sale_starts_at=utcnow() - timedelta(days=2),
            )
        )
    await refresh_catalog_statuses(rt)
    # then the job stores SOLD_OUT and ENDED
    async with rt.db.read() as s:
        statuses = {e.title: e.status for e in (await s.exec(select(Event))).all()}
        sessions = {s_.event_id: s_.status for s_ in (await s.exec(select(EventSession))).all()}
    assert statuses == {"Full": EventStatus.SOLD_OUT, "Past": EventStatus.ENDED}
    assert sessions == {full.id: SessionStatus.SOLD_OUT, past.id: SessionStatus.ENDED}
    # and a refund making a ticket available puts the event back on sale
    async with rt.db.write() as s:
        await s.exec(
            update(TicketTier)
            .where(col(TicketTier.session_id).in_(session_ids))
            .values(reserved=TicketTier.capacity - 1)
        )
    await refresh_catalog_statuses(rt)
    assert await refresh_catalog_statuses(rt) == 0  # idempotent
    async with rt.db.read() as s:
        back = await s.get(Event, full.id)
    assert back is not None and back.status == EventStatus.ON_SALE


def test_the_status_job_is_registered():
    assert "catalog-statuses" in [job.name for job in JOBS]
