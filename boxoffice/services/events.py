"""Events (项目): creation and editing by organizers, publishing, cancelling, the cached
detail read, and want-to-see marks.

An event is built as a DRAFT (sessions, tiers), then published: UPCOMING until its first sale
opens, ON_SALE after (``catalog_statuses`` derives the time-driven part on every read).
Cancelling is final; the refunds of a cancelled event start from ``on_event_cancelled`` hooks,
run in the cancelling transaction. Publishing and cancelling write ``event.published`` and
``event.cancelled`` to the outbox in their own transaction (webhooks, the ``changes`` feed).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, CatalogStateInvalid, NotFound
from boxoffice.models.events import (
    Event,
    EventCategory,
    EventSession,
    EventStatus,
    SessionSeat,
    SessionStatus,
    TicketTier,
    TierStatus,
    WantToSee,
)
from boxoffice.models.identity import Tenant, TenantStatus
from boxoffice.models.venues import SeatMap, Venue
from boxoffice.services import audit, outbox, validation
from boxoffice.services.catalog_access import can_see_event, get_for_write, require_tenant_writer
from boxoffice.services.catalog_cache import CatalogCache, event_key
from boxoffice.services.catalog_statuses import event_status
from boxoffice.services.search_text import event_search_text
from boxoffice.services.view_counts import ViewCounts
from boxoffice.services.viewer import Viewer

EVENT_FIELDS = ("title", "category", "city", "venue_id", "status", "poster_url")
MAX_PERFORMERS = 50
MAX_TAGS = 20
MAX_SESSIONS_PER_EVENT = 500

EventCancelledHook = Callable[[AsyncSession, Event, Viewer], Awaitable[None]]
_cancel_hooks: list[EventCancelledHook] = []


def on_event_cancelled(hook: EventCancelledHook) -> EventCancelledHook:
    """Register ``hook(session, event, viewer)`` to run inside every ``cancel_event``
    transaction, after the event and its sessions are CANCELLED. The refunds of a cancelled
    event's paid orders start here (the refunds feature registers its hook at import); a hook
    that raises rolls the cancellation back."""
    _cancel_hooks.append(hook)
    return hook


@dataclass(frozen=True)
class EventDetail:
    """An event with what its detail page shows, as cached (never mutate)."""

    event: Event
    venue: Venue | None
    sessions: list[EventSession]
    tiers: dict[str, list[TicketTier]] = field(default_factory=dict)


def parse_category(value: str, *, field: str = "category") -> EventCategory:
    wanted = re.sub(r"[^A-Z]", "", value.upper())
    for category in EventCategory:
        if category.value.replace("_", "") == wanted:
            return category
    names = ", ".join(c.value for c in EventCategory)
    raise BadUserInput(f"{field} must be one of {names}", field=field)


def _names(values: Sequence[str] | None, *, field: str, limit: int, length: int) -> list[str]:
    out: list[str] = []
    for i, value in enumerate(values or ()):
        cleaned = validation.text(value, field=f"{field}[{i}]", max_length=length)
        if cleaned not in out:
            out.append(cleaned)
    if len(out) > limit:
        raise BadUserInput(f"{field} has at most {limit} entries", field=field)
    return out


def event_resource(event: Event) -> dict[str, Any]:
    """The event as the ``event.*`` outbox payloads (webhooks, ``changes``) show it."""

    def moment(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": event.id,
        "tenantId": event.tenant_id,
        "title": event.title,
        "category": EventCategory(event.category).value,
        "city": event.city,
        "venueId": event.venue_id,
        "status": EventStatus(event.status).value,
        "startsAt": moment(event.starts_at),
        "endsAt": moment(event.ends_at),
        "saleStartsAt": moment(event.sale_starts_at),
        "publishedAt": moment(event.published_at),
        "cancelledAt": moment(event.cancelled_at),
        "cancelReason": event.cancel_reason,
    }


def _emit(session: AsyncSession, topic: str, event: Event) -> None:
    outbox.emit(
        session,
        topic=topic,
        aggregate_type="Event",
        aggregate_id=event.id,
        tenant_id=event.tenant_id,
        payload={"resource": event_resource(event)},
    )


def require_editable(event: Event, *, field: str = "id") -> None:
    """Cancelled and ended events are final (BAD_USER_INPUT naming ``field``, the input that
    led to the event)."""
    if event.status == EventStatus.CANCELLED or event_status(event) == EventStatus.ENDED:
        raise CatalogStateInvalid(f"The event is {event_status(event)}.", field=field)


async def lock_event(session: AsyncSession, event_id: str) -> Event:
    """The event row, locked (``FOR UPDATE`` on PostgreSQL; SQLite serialises writers).
    Every write to an event's sessions and tiers takes this lock first, so they apply one
    at a time per event (and always in the order event → session → tier)."""
    event = await session.get(Event, event_id, with_for_update=True, populate_existing=True)
    if event is None:
        raise NotFound("No such event.")
    return event


async def refresh_aggregates(session: AsyncSession, event: Event) -> None:
    """Recompute the event's first start, last end, first sale start and price range from
    its live sessions and active tiers (call after changing either, same transaction)."""
    live = (
        col(EventSession.event_id) == event.id,
        col(EventSession.status) != SessionStatus.CANCELLED,
    )
    times = (
        await session.exec(
            select(
                func.min(col(EventSession.starts_at)),
                func.max(col(EventSession.ends_at)),
                func.min(col(EventSession.sale_starts_at)),
            ).where(*live)
        )
    ).one()
    prices = (
        await session.exec(
            select(func.min(col(TicketTier.price_minor)), func.max(col(TicketTier.price_minor)))
            .join(EventSession, col(EventSession.id) == col(TicketTier.session_id))
            .where(*live, col(TicketTier.status) == TierStatus.ACTIVE)
        )
    ).one()
    event.starts_at, event.ends_at, event.sale_starts_at = times
    event.min_price_minor, event.max_price_minor = prices
    event.updated_at = utcnow()
    session.add(event)


async def _venue_for(session: AsyncSession, venue_id: str, tenant_id: str) -> Venue:
    venue = await session.get(Venue, venue_id)
    if venue is None or venue.tenant_id != tenant_id:
        raise NotFound("No such venue.", field="venueId")
    return venue


async def create_event(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str,
    title: str,
    category: str,
    city: str,
    venue_id: str,
    description: str | None = None,
    poster_url: str | None = None,
    performers: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
) -> Event:
    """A DRAFT event of the tenant, at one of the tenant's venues."""
    user_id = require_tenant_writer(viewer, tenant_id)
    event = Event(
        tenant_id=tenant_id,
        venue_id=venue_id,
        title=validation.text(title, field="title", max_length=200),
        category=parse_category(category),
        city=validation.text(city, field="city", max_length=64),
        description=validation.text(
            description, field="description", max_length=10_000, required=False
        ),
        poster_url=validation.url(poster_url, field="posterUrl"),
        performers=_names(performers, field="performers", limit=MAX_PERFORMERS, length=100),
        tags=_names(tags, field="tags", limit=MAX_TAGS, length=32),
        status=EventStatus.DRAFT,
        created_by=user_id,
    )
    async with db.write() as session:
        if await session.get(Tenant, tenant_id) is None:
            raise NotFound("No such tenant.", field="tenantId")
        venue = await _venue_for(session, venue_id, tenant_id)
        event.search_text = event_search_text(event, venue.name)
        session.add(event)
        audit.record(
            session,
            viewer=viewer,
            action="event.create",
            target_type="Event",
            target_id=event.id,
            tenant_id=tenant_id,
            after=audit.snapshot(event, EVENT_FIELDS),
        )
    return event


async def update_event(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    event_id: str,
    title: str | None = None,
    category: str | None = None,
    city: str | None = None,
    venue_id: str | None = None,
    description: str | None = None,
    poster_url: str | None = None,
    performers: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
) -> Event:
    """Change an event's details (None leaves a field as it is). Moving it to another venue
    is refused while one of its sessions sells a seat map of the current venue."""
    async with db.write() as session:
        event = await get_for_write(session, Event, event_id, viewer=viewer, lock=True)
        require_editable(event)
        before = audit.snapshot(event, EVENT_FIELDS)
        if title is not None:
            event.title = validation.text(title, field="title", max_length=200)
        if category is not None:
            event.category = parse_category(category)
        if city is not None:
            event.city = validation.text(city, field="city", max_length=64)
        if description is not None:
            event.description = validation.text(
                description, field="description", max_length=10_000, required=False
            )
        if poster_url is not None:
            event.poster_url = validation.url(poster_url, field="posterUrl")
        if performers is not None:
            event.performers = _names(
                performers, field="performers", limit=MAX_PERFORMERS, length=100
            )
        if tags is not None:
            event.tags = _names(tags, field="tags", limit=MAX_TAGS, length=32)
        if venue_id is not None and venue_id != event.venue_id:
            await _venue_for(session, venue_id, event.tenant_id)
            mapped = await session.exec(
                select(EventSession.id).where(
                    EventSession.event_id == event.id, col(EventSession.seat_map_id).is_not(None)
                )
            )
            if mapped.first() is not None:
                raise BadUserInput(
                    "Sessions sell seat maps of the current venue; remove them first.",
                    field="venueId",
                )
            event.venue_id = venue_id
        venue = await _venue_for(session, event.venue_id, event.tenant_id)
        event.search_text = event_search_text(event, venue.name)
        event.updated_at = utcnow()
        session.add(event)
        audit.record(
            session,
            viewer=viewer,
            action="event.update",
            target_type="Event",
            target_id=event.id,
            tenant_id=event.tenant_id,
            before=before,
            after=audit.snapshot(event, EVENT_FIELDS),
        )
    await cache.invalidate(event_ids=[event.id])
    return event


async def _check_publishable(session: AsyncSession, event: Event) -> None:
    tenant = await session.get(Tenant, event.tenant_id)
    if tenant is None or tenant.status != TenantStatus.ACTIVE:
        raise CatalogStateInvalid("The tenant is not active.", field="tenantId")
    sessions = list(
        (
            await session.exec(
                select(EventSession).where(
                    EventSession.event_id == event.id,
                    EventSession.status != SessionStatus.CANCELLED,
                )
            )
        ).all()
    )
    now = utcnow()
    if not any(s.ends_at > now for s in sessions):
        raise CatalogStateInvalid("Add a session that has not ended yet.", field="sessions")
    active = set(
        (
            await session.exec(
                select(TicketTier.session_id).where(
                    col(TicketTier.session_id).in_([s.id for s in sessions]),
                    TicketTier.status == TierStatus.ACTIVE,
                )
            )
        ).all()
    )
    if not active:
        raise CatalogStateInvalid("Add a ticket tier before publishing.", field="tiers")
    for event_session in sessions:
        if event_session.seat_map_id is None:
            continue
        seat_map = await session.get(SeatMap, event_session.seat_map_id)
        assigned = (
            await session.exec(
                select(func.count())
                .select_from(SessionSeat)
                .where(
                    SessionSeat.session_id == event_session.id,
                    col(SessionSeat.tier_id).is_not(None) | col(SessionSeat.blocked),
                )
            )
        ).one()
        if seat_map is not None and assigned < seat_map.seat_count:
            raise CatalogStateInvalid(
                f"{seat_map.seat_count - assigned} seats of a session's seat map are in no "
                "tier and not blocked.",
                field="sessions",
                sessionId=event_session.id,
            )


async def publish_event(
    *, db: Database, cache: CatalogCache, viewer: Viewer, event_id: str
) -> Event:
    """Publish a DRAFT: it needs an ACTIVE tenant, a session with an active tier, and every
    seat of each seated session in a tier or blocked. Publishing a published event is a
    no-op; a cancelled or ended one is refused."""
    async with db.write() as session:
        event = await get_for_write(session, Event, event_id, viewer=viewer, lock=True)
        if event.status != EventStatus.DRAFT:
            require_editable(event)
            return event
        await _check_publishable(session, event)
        await refresh_aggregates(session, event)
        now = utcnow()
        before = audit.snapshot(event, EVENT_FIELDS)
        event.published_at = now
        event.status = EventStatus.UPCOMING
        event.status = event_status(event, now)
        session.add(event)
        _emit(session, "event.published", event)
        audit.record(
            session,
            viewer=viewer,
            action="event.publish",
            target_type="Event",
            target_id=event.id,
            tenant_id=event.tenant_id,
            before=before,
            after=audit.snapshot(event, EVENT_FIELDS),
        )
    await cache.invalidate(event_ids=[event.id])
    return event


async def cancel_event(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    event_id: str,
    reason: str | None = None,
) -> Event:
    """CANCELLED, with its sessions; the ``on_event_cancelled`` hooks run in the same
    transaction. Cancelling twice is refused, as is cancelling an ended event."""
    reason = validation.optional_text(reason, field="reason", max_length=500)
    async with db.write() as session:
        event = await get_for_write(session, Event, event_id, viewer=viewer, lock=True)
        require_editable(event)
        now = utcnow()
        before = audit.snapshot(event, EVENT_FIELDS)
        event.status = EventStatus.CANCELLED
        event.cancelled_at = now
        event.cancel_reason = reason
        event.updated_at = now
        session.add(event)
        await session.exec(
            update(EventSession)
            .where(col(EventSession.event_id) == event.id)
            .values(status=SessionStatus.CANCELLED, updated_at=now)
        )
        _emit(session, "event.cancelled", event)
        for hook in _cancel_hooks:
            await hook(session, event, viewer)
        audit.record(
            session,
            viewer=viewer,
            action="event.cancel",
            target_type="Event",
            target_id=event.id,
            tenant_id=event.tenant_id,
            before=before,
            after={**audit.snapshot(event, EVENT_FIELDS), "reason": reason},
        )
    await cache.invalidate(event_ids=[event.id])
    return event


async def load_detail(db: Database, event_id: str) -> EventDetail | None:
    """The event, its venue, sessions (by start) and tiers (by sort order): four queries."""
    async with db.read() as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        venue = await session.get(Venue, event.venue_id)
        sessions = list(
            (
                await session.exec(
                    select(EventSession)
                    .where(EventSession.event_id == event_id)
                    .order_by(col(EventSession.starts_at), col(EventSession.id))
                    .limit(MAX_SESSIONS_PER_EVENT)
                )
            ).all()
        )
        tiers: dict[str, list[TicketTier]] = {s.id: [] for s in sessions}
        if sessions:
            rows = await session.exec(
                select(TicketTier)
                .where(col(TicketTier.session_id).in_(list(tiers)))
                .order_by(col(TicketTier.sort_order), col(TicketTier.id))
            )
            for tier in rows.all():
                tiers[tier.session_id].append(tier)
    return EventDetail(event=event, venue=venue, sessions=sessions, tiers=tiers)


async def get_event_detail(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    event_id: str,
    views: ViewCounts | None = None,
) -> EventDetail:
    """The event page, served from the catalog cache. DRAFT events only for their staff and
    operators (NOT_FOUND otherwise). Counts a view of a published event in ``views``."""
    detail = await cache.get_or_load(event_key(event_id), lambda: load_detail(db, event_id))
    if detail is None or not can_see_event(viewer, detail.event):
        raise NotFound("No such event.")
    if views is not None and detail.event.status != EventStatus.DRAFT:
        views.add(event_id)
    return detail


async def get_event(*, db: Database, viewer: Viewer, event_id: str) -> Event:
    """The event as stored now (uncached), if the viewer may see it."""
    async with db.read() as session:
        event = await session.get(Event, event_id)
    if event is None or not can_see_event(viewer, event):
        raise NotFound("No such event.")
    return event


async def mark_want_to_see(*, db: Database, viewer: Viewer, event_id: str, want: bool) -> Event:
    """Mark (or unmark) 想看; ``want_count`` moves only when the mark really changes, so
    repeating a call is harmless."""
    user_id = viewer.require_user()
    try:
        async with db.write() as session:
            event = await session.get(Event, event_id)
            if event is None or not can_see_event(viewer, event):
                raise NotFound("No such event.")
            if want:
                session.add(WantToSee(user_id=user_id, event_id=event_id))
                await session.flush()
                delta = 1
            else:
                removed = await session.exec(
                    delete(WantToSee).where(
                        col(WantToSee.user_id) == user_id, col(WantToSee.event_id) == event_id
                    )
                )
                delta = -int(removed.rowcount or 0)
            if delta:
                await session.exec(
                    update(Event)
                    .where(col(Event.id) == event_id)
                    .values(want_count=col(Event.want_count) + delta)
                )
    except IntegrityError:
        pass  # already marked
    async with db.read() as session:
        fresh = await session.get(Event, event_id)
    if fresh is None:
        raise NotFound("No such event.")
    return fresh
