"""Home-page banners: platform-wide ones by operators, a tenant's own by its organizers."""

from __future__ import annotations

from datetime import datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.db import Database
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.models.events import Event
from boxoffice.models.home import Banner
from boxoffice.models.identity import Role
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import require_tenant_writer
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.viewer import Viewer

BANNER_FIELDS = ("title", "image_url", "link_url", "event_id", "city", "sort_order")


def require_placement_writer(viewer: Viewer, tenant_id: str | None) -> str:
    """Platform placements (no tenant) are the operators'; a tenant's are its organizers'."""
    if tenant_id is None:
        return viewer.require_role(Role.OPERATOR)
    return require_tenant_writer(viewer, tenant_id)


async def placement_event(session: AsyncSession, event_id: str, tenant_id: str | None) -> Event:
    """The event a placement points at; a tenant's placement points at its own events."""
    event = await session.get(Event, event_id)
    if event is None or (tenant_id is not None and event.tenant_id != tenant_id):
        raise NotFound("No such event.", field="eventId")
    return event


async def create_banner(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    title: str,
    image_url: str,
    link_url: str | None = None,
    event_id: str | None = None,
    tenant_id: str | None = None,
    city: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    sort_order: int = 0,
) -> Banner:
    user_id = require_placement_writer(viewer, tenant_id)
    starts_at, ends_at = validation.time_window(starts_at, ends_at)
    image = validation.url(image_url, field="imageUrl")
    if image is None:
        raise BadUserInput("imageUrl is required", field="imageUrl")
    banner = Banner(
        tenant_id=tenant_id,
        title=validation.text(title, field="title", max_length=100),
        image_url=image,
        link_url=validation.url(link_url, field="linkUrl"),
        event_id=event_id,
        city=validation.optional_text(city, field="city", max_length=64),
        starts_at=starts_at,
        ends_at=ends_at,
        sort_order=sort_order,
        created_by=user_id,
    )
    async with db.write() as session:
        if event_id is not None:
            await placement_event(session, event_id, tenant_id)
        session.add(banner)
        audit.record(
            session,
            viewer=viewer,
            action="banner.create",
            target_type="Banner",
            target_id=banner.id,
            tenant_id=tenant_id,
            after=audit.snapshot(banner, BANNER_FIELDS),
        )
    await cache.invalidate(home=True)
    return banner


async def delete_banner(
    *, db: Database, cache: CatalogCache, viewer: Viewer, banner_id: str
) -> None:
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    async with db.write() as session:
        banner = await session.get(Banner, banner_id)
        if banner is None:
            raise NotFound("No such banner.")
        require_placement_writer(viewer, banner.tenant_id)
        before = audit.snapshot(banner, BANNER_FIELDS)
        await session.delete(banner)
        audit.record(
            session,
            viewer=viewer,
            action="banner.delete",
            target_type="Banner",
            target_id=banner_id,
            tenant_id=banner.tenant_id,
            before=before,
        )
    await cache.invalidate(home=True)
