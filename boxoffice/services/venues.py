"""Venues (场馆): the places events happen, owned by a tenant."""

from __future__ import annotations

import math

from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.models.events import Event
from boxoffice.models.identity import Role, Tenant
from boxoffice.models.venues import Venue
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import get_for_write, is_agent, require_tenant_writer
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.search_text import event_search_text
from boxoffice.services.viewer import Viewer

VENUE_FIELDS = ("name", "city", "address", "latitude", "longitude", "capacity")
MAX_CAPACITY = 1_000_000
MAX_LIST = 200


def _coordinate(value: float | None, *, field: str, limit: float) -> float | None:
    if value is None:
        return None
    if not math.isfinite(value) or abs(value) > limit:
        raise BadUserInput(f"{field} must be a number between -{limit} and {limit}", field=field)
    return float(value)


async def create_venue(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str,
    name: str,
    city: str,
    address: str,
    latitude: float | None = None,
    longitude: float | None = None,
    capacity: int | None = None,
) -> Venue:
    require_tenant_writer(viewer, tenant_id)
    venue = Venue(
        tenant_id=tenant_id,
        name=validation.text(name, field="name", max_length=100),
        city=validation.text(city, field="city", max_length=64),
        address=validation.text(address, field="address", max_length=300),
        latitude=_coordinate(latitude, field="latitude", limit=90),
        longitude=_coordinate(longitude, field="longitude", limit=180),
        capacity=validation.positive_int(
            capacity or 0, field="capacity", maximum=MAX_CAPACITY, allow_zero=True
        ),
    )
    async with db.write() as session:
        if await session.get(Tenant, tenant_id) is None:
            raise NotFound("No such tenant.", field="tenantId")
        session.add(venue)
        audit.record(
            session,
            viewer=viewer,
            action="venue.create",
            target_type="Venue",
            target_id=venue.id,
            tenant_id=tenant_id,
            after=audit.snapshot(venue, VENUE_FIELDS),
        )
    return venue


async def update_venue(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    venue_id: str,
    name: str | None = None,
    city: str | None = None,
    address: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    capacity: int | None = None,
) -> Venue:
    """Renaming a venue refreshes the search text of its events."""
    async with db.write() as session:
        venue = await get_for_write(session, Venue, venue_id, viewer=viewer, lock=True)
        before = audit.snapshot(venue, VENUE_FIELDS)
        if name is not None:
            venue.name = validation.text(name, field="name", max_length=100)
        if city is not None:
            venue.city = validation.text(city, field="city", max_length=64)
        if address is not None:
            venue.address = validation.text(address, field="address", max_length=300)
        if latitude is not None:
            venue.latitude = _coordinate(latitude, field="latitude", limit=90)
        if longitude is not None:
            venue.longitude = _coordinate(longitude, field="longitude", limit=180)
        if capacity is not None:
            venue.capacity = validation.positive_int(
                capacity, field="capacity", maximum=MAX_CAPACITY, allow_zero=True
            )
        venue.updated_at = utcnow()
        session.add(venue)
        events = list((await session.exec(select(Event).where(Event.venue_id == venue.id))).all())
        for event in events:
            event.search_text = event_search_text(event, venue.name)
            session.add(event)
        audit.record(
            session,
            viewer=viewer,
            action="venue.update",
            target_type="Venue",
            target_id=venue.id,
            tenant_id=venue.tenant_id,
            before=before,
            after=audit.snapshot(venue, VENUE_FIELDS),
        )
    await cache.invalidate(event_ids=[e.id for e in events])
    return venue


async def get_venue(*, db: Database, viewer: Viewer, venue_id: str) -> Venue:
    """A venue by id for the back office: its tenant's staff, agents and operators."""
    async with db.read() as session:
        venue = await session.get(Venue, venue_id)
    if venue is None or not (is_agent(viewer) or viewer.can_staff(venue.tenant_id)):
        viewer.require_user()
        raise NotFound("No such venue.")
    return venue


async def list_venues(
    *, db: Database, viewer: Viewer, tenant_id: str | None = None, city: str | None = None
) -> list[Venue]:
    """The venues the viewer manages: its tenants' (operators and agents: any tenant's)."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR, Role.AGENT)
    query = select(Venue).order_by(col(Venue.city), col(Venue.name), col(Venue.id))
    if not (viewer.is_operator or is_agent(viewer)):
        own = sorted(viewer.tenants_with(Role.ORGANIZER))
        if tenant_id is not None and tenant_id not in own:
            raise NotFound("No such tenant.", field="tenantId")
        query = query.where(col(Venue.tenant_id).in_(own))
    if tenant_id is not None:
        query = query.where(Venue.tenant_id == tenant_id)
    if city:
        query = query.where(Venue.city == city.strip())
    async with db.read() as session:
        return list((await session.exec(query.limit(MAX_LIST))).all())
