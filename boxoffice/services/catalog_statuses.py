"""What status an event or a session shows, exactly at its time boundaries.

The stored ``status`` columns hold the admin decisions (DRAFT, CANCELLED), what the orders
report (SOLD_OUT) and, kept current by the ``catalog-statuses`` job, the time-driven states.
Reads never trust the time-driven part of a stored status: ``event_status``/``session_status``
derive it from the stored times and the clock, and ``event_status_condition`` is the same rule
in SQL for filters. So a sale opens at its second whether or not the job has run.

An event's time-driven status comes from its aggregates: ENDED once its last session has ended,
else ON_SALE once its first sale has started, else UPCOMING.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, exists, false, func, not_, or_, select, update
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.models.events import (
    Event,
    EventSession,
    EventStatus,
    SessionStatus,
    TicketTier,
    TierStatus,
)

log = logging.getLogger("boxoffice.catalog_statuses")

_FINAL_EVENT = (EventStatus.DRAFT, EventStatus.CANCELLED)


def event_status(event: Event, now: datetime | None = None) -> EventStatus:
    stored = EventStatus(event.status)
    if stored in _FINAL_EVENT:
        return stored
    now = now or utcnow()
    if event.ends_at is not None and event.ends_at <= now:
        return EventStatus.ENDED
    if stored == EventStatus.SOLD_OUT:
        return EventStatus.SOLD_OUT
    if event.sale_starts_at is not None and event.sale_starts_at <= now:
        return EventStatus.ON_SALE
    return EventStatus.UPCOMING


def session_status(session: EventSession, now: datetime | None = None) -> SessionStatus:
    stored = SessionStatus(session.status)
    if stored == SessionStatus.CANCELLED:
        return stored
    now = now or utcnow()
    if session.ends_at <= now:
        return SessionStatus.ENDED
    if session.sale_closes_at <= now:
        return SessionStatus.SALE_CLOSED
    if session.sale_starts_at > now:
        return SessionStatus.SCHEDULED
    if stored == SessionStatus.SOLD_OUT:
        return SessionStatus.SOLD_OUT
    return SessionStatus.ON_SALE


def next_event_boundary(event: Event, now: datetime) -> datetime | None:
    """The next moment ``event_status`` may change by the clock alone (None: never)."""
    return _first_after(now, event.sale_starts_at, event.ends_at)


def next_session_boundary(session: EventSession, now: datetime) -> datetime | None:
    """The next moment ``session_status`` may change by the clock alone (None: never)."""
    return _first_after(now, session.sale_starts_at, session.sale_closes_at, session.ends_at)


def _first_after(now: datetime, *moments: datetime | None) -> datetime | None:
    later = [m for m in moments if m is not None and m > now]
    return min(later) if later else None


def is_on_sale(session: EventSession, now: datetime | None = None) -> bool:
    return session_status(session, now) == SessionStatus.ON_SALE


def event_status_condition(status: EventStatus, now: datetime) -> ColumnElement[bool]:
    """SQL true exactly for the events ``event_status`` reports as ``status``."""
    stored = col(Event.status)
    published = stored.in_(
        (EventStatus.UPCOMING, EventStatus.ON_SALE, EventStatus.SOLD_OUT, EventStatus.ENDED)
    )
    ended = and_(col(Event.ends_at).is_not(None), col(Event.ends_at) <= now)
    sale_started = and_(col(Event.sale_starts_at).is_not(None), col(Event.sale_starts_at) <= now)
    if status in _FINAL_EVENT:
        return stored == status
    if status == EventStatus.ENDED:
        return and_(published, ended)
    if status == EventStatus.SOLD_OUT:
        return and_(stored == EventStatus.SOLD_OUT, not_(ended))
    live = and_(published, stored != EventStatus.SOLD_OUT, not_(ended))
    if status == EventStatus.ON_SALE:
        return and_(live, sale_started)
    if status == EventStatus.UPCOMING:
        return and_(live, not_(sale_started))
    return false()


def live_condition(now: datetime) -> ColumnElement[bool]:
    """Published, not ended, not cancelled: what the public browses by default."""
    return or_(
        event_status_condition(EventStatus.UPCOMING, now),
        event_status_condition(EventStatus.ON_SALE, now),
        event_status_condition(EventStatus.SOLD_OUT, now),
    )


async def refresh_statuses(db: Database, now: datetime | None = None) -> int:
    """Write the time-driven statuses, and SOLD_OUT from the tier counters, into the stored
    columns. Returns the number of rows changed. Idempotent; run by the ``catalog-statuses``
    job under a lease."""
    now = now or utcnow()
    changed = 0
    sellable = and_(
        col(TicketTier.session_id) == col(EventSession.id),
        col(TicketTier.status) == TierStatus.ACTIVE,
    )
    has_stock = exists().where(sellable, col(TicketTier.reserved) < col(TicketTier.capacity))
    has_tiers = exists().where(sellable)
    session_live = col(EventSession.status) != SessionStatus.CANCELLED
    async with db.write() as session:
        for target, condition in (
            (SessionStatus.ENDED, col(EventSession.ends_at) <= now),
            (
                SessionStatus.SALE_CLOSED,
                and_(
                    col(EventSession.ends_at) > now,
                    func.coalesce(col(EventSession.sale_ends_at), col(EventSession.starts_at))
                    <= now,
                ),
            ),
            (SessionStatus.SCHEDULED, col(EventSession.sale_starts_at) > now),
            (
                SessionStatus.SOLD_OUT,
                and_(_session_selling(now), has_tiers, not_(has_stock)),
            ),
            (SessionStatus.ON_SALE, and_(_session_selling(now), or_(has_stock, not_(has_tiers)))),
        ):
            result = await session.exec(
                update(EventSession)
                .where(session_live, condition, col(EventSession.status) != target)
                .values(status=target, updated_at=now)
            )
            changed += int(result.rowcount or 0)
        event_sessions = and_(
            col(EventSession.event_id) == col(Event.id),
            col(EventSession.status) != SessionStatus.CANCELLED,
        )
        open_stock = exists(
            select(col(TicketTier.id))
            .join(EventSession, col(EventSession.id) == col(TicketTier.session_id))
            .where(
                col(EventSession.event_id) == col(Event.id),
                col(EventSession.status) != SessionStatus.CANCELLED,
                col(EventSession.ends_at) > now,
                col(TicketTier.status) == TierStatus.ACTIVE,
                col(TicketTier.reserved) < col(TicketTier.capacity),
            )
        )
        published = col(Event.status).in_(
            (EventStatus.UPCOMING, EventStatus.ON_SALE, EventStatus.SOLD_OUT)
        )
        ended = and_(col(Event.ends_at).is_not(None), col(Event.ends_at) <= now)
        sale_started = and_(
            col(Event.sale_starts_at).is_not(None), col(Event.sale_starts_at) <= now
        )
        for event_target, condition in (
            (EventStatus.ENDED, ended),
            (
                EventStatus.SOLD_OUT,
                and_(not_(ended), exists().where(event_sessions), not_(open_stock)),
            ),
            (EventStatus.ON_SALE, and_(not_(ended), sale_started, open_stock)),
            (EventStatus.UPCOMING, and_(not_(ended), not_(sale_started), open_stock)),
        ):
            result = await session.exec(
                update(Event)
                .where(published, condition, col(Event.status) != event_target)
                .values(status=event_target, updated_at=now)
            )
            changed += int(result.rowcount or 0)
    if changed:
        log.info("catalog statuses refreshed", extra={"changed": changed})
    return changed


def _session_selling(now: datetime) -> ColumnElement[bool]:
    return and_(
        col(EventSession.sale_starts_at) <= now,
        func.coalesce(col(EventSession.sale_ends_at), col(EventSession.starts_at)) > now,
    )
