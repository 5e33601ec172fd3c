"""Recommended-event slots (运营位) of the home page: platform-wide by operators, a tenant's
own by its organizers, each pointing at one event for a city (or all) and a time window."""

from __future__ import annotations

from datetime import datetime

from boxoffice.db import Database
from boxoffice.errors import NotFound
from boxoffice.models.home import Recommendation
from boxoffice.models.identity import Role
from boxoffice.services import audit, validation
from boxoffice.services.banners import placement_event, require_placement_writer
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.viewer import Viewer

RECOMMENDATION_FIELDS = ("event_id", "city", "reason", "sort_order")


async def create_recommendation(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    event_id: str,
    tenant_id: str | None = None,
    city: str | None = None,
    reason: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    sort_order: int = 0,
) -> Recommendation:
    user_id = require_placement_writer(viewer, tenant_id)
    starts_at, ends_at = validation.time_window(starts_at, ends_at)
    slot = Recommendation(
        tenant_id=tenant_id,
        event_id=event_id,
        city=validation.optional_text(city, field="city", max_length=64),
        reason=validation.optional_text(reason, field="reason", max_length=100),
        starts_at=starts_at,
        ends_at=ends_at,
        sort_order=sort_order,
        created_by=user_id,
    )
    async with db.write() as session:
        await placement_event(session, event_id, tenant_id)
        session.add(slot)
        audit.record(
            session,
            viewer=viewer,
            action="recommendation.create",
            target_type="Recommendation",
            target_id=slot.id,
            tenant_id=tenant_id,
            after=audit.snapshot(slot, RECOMMENDATION_FIELDS),
        )
    await cache.invalidate(home=True)
    return slot


async def delete_recommendation(
    *, db: Database, cache: CatalogCache, viewer: Viewer, recommendation_id: str
) -> None:
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    async with db.write() as session:
        slot = await session.get(Recommendation, recommendation_id)
        if slot is None:
            raise NotFound("No such recommendation.")
        require_placement_writer(viewer, slot.tenant_id)
        before = audit.snapshot(slot, RECOMMENDATION_FIELDS)
        await session.delete(slot)
        audit.record(
            session,
            viewer=viewer,
            action="recommendation.delete",
            target_type="Recommendation",
            target_id=recommendation_id,
            tenant_id=slot.tenant_id,
            before=before,
        )
    await cache.invalidate(home=True)
