"""Factories for catalog rows, built through the services (so aggregates, seats and audit
entries are what the API would make)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from boxoffice.clock import utcnow
from boxoffice.models.events import Event, EventSession, TicketTier
from boxoffice.models.identity import Role, Tenant
from boxoffice.models.venues import SeatMap, Venue
from boxoffice.runtime import Runtime
from boxoffice.services import event_sessions, events, seat_maps, tiers, venues
from boxoffice.services.seat_maps import RowSpec, SectionSpec
from boxoffice.services.viewer import Viewer

OPERATOR = Viewer(user_id="operator-for-tests", roles=frozenset({Role.OPERATOR}))


async def make_venue(
    rt: Runtime, tenant: Tenant, name: str = "Test Hall", city: str = "上海"
) -> Venue:
    return await venues.create_venue(
        db=rt.db, viewer=OPERATOR, tenant_id=tenant.id, name=name, city=city, address="1 Road"
    )


async def make_seat_map(
    rt: Runtime,
    venue: Venue,
    sections: dict[str, int] | None = None,
    rows: int = 2,
) -> SeatMap:
    """Sections named by ``sections`` with ``rows`` rows (A, B, ...) of n seats each."""
    layout = sections or {"A": 5, "B": 5}
    return await seat_maps.create_seat_map(
        db=rt.db,
        viewer=OPERATOR,
        venue_id=venue.id,
        name="Main",
        sections=[
            SectionSpec(name, rows=[RowSpec(chr(65 + r), n) for r in range(rows)])
            for name, n in layout.items()
        ],
    )


async def make_event(
    rt: Runtime,
    tenant: Tenant,
    venue: Venue,
    title: str = "Friday Stand-up",
    *,
    city: str | None = None,
    category: str = "STANDUP",
    performers: list[str] | None = None,
    tags: list[str] | None = None,
) -> Event:
    return await events.create_event(
        db=rt.db,
        viewer=OPERATOR,
        tenant_id=tenant.id,
        title=title,
        category=category,
        city=city or venue.city,
        venue_id=venue.id,
        performers=performers,
        tags=tags,
    )


async def make_session(
    rt: Runtime,
    event: Event,
    *,
    starts_at: datetime | None = None,
    sale_starts_at: datetime | None = None,
    seat_map: SeatMap | None = None,
) -> EventSession:
    starts = starts_at or utcnow() + timedelta(days=7)
    return await event_sessions.create_session(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        event_id=event.id,
        starts_at=starts,
        ends_at=starts + timedelta(hours=2),
        sale_starts_at=sale_starts_at or utcnow() - timedelta(days=1),
        seat_map_id=seat_map.id if seat_map else None,
    )


async def make_tier(
    rt: Runtime,
    session: EventSession,
    name: str = "GA",
    price: str = "180.00",
    capacity: int | None = 100,
    sections: list[str] | None = None,
) -> TicketTier:
    return await tiers.create_tier(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=session.id,
        name=name,
        price=Decimal(price),
        capacity=None if sections else capacity,
        sections=sections,
    )


async def publish(rt: Runtime, event: Event) -> Event:
    return await events.publish_event(
        db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=event.id
    )


async def make_published_event(
    rt: Runtime,
    tenant: Tenant,
    venue: Venue,
    title: str = "Friday Stand-up",
    *,
    starts_at: datetime | None = None,
    sale_starts_at: datetime | None = None,
    price: str = "180.00",
    **kw: object,
) -> Event:
    event = await make_event(rt, tenant, venue, title, **kw)  # type: ignore[arg-type]
    session = await make_session(rt, event, starts_at=starts_at, sale_starts_at=sale_starts_at)
    await make_tier(rt, session, price=price)
    return await publish(rt, event)
