"""The event calendar (演出日历): per day of a month, the published events with a session
starting that day, in a time zone (default Asia/Shanghai, where the shows are)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import col, select

from boxoffice.db import Database
from boxoffice.errors import BadUserInput
from boxoffice.models.events import (
    PUBLISHED_STATUSES,
    Event,
    EventSession,
    SessionStatus,
)

DEFAULT_TIME_ZONE = "Asia/Shanghai"
MAX_SESSIONS = 5_000


@dataclass(frozen=True)
class CalendarDay:
    date: date
    events: list[Event]
    sessions: list[EventSession]

    @property
    def count(self) -> int:
        return len(self.events)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BadUserInput(f"Unknown time zone {name!r}", field="timeZone") from exc


def month_bounds(year: int, month: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month as a UTC [start, end) interval in ``zone``."""
    if not 2000 <= year <= 2100:
        raise BadUserInput("year must be between 2000 and 2100", field="year")
    if not 1 <= month <= 12:
        raise BadUserInput("month must be between 1 and 12", field="month")
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


async def event_calendar(
    *,
    db: Database,
    year: int,
    month: int,
    tenant_id: str | None = None,
    city: str | None = None,
    time_zone: str = DEFAULT_TIME_ZONE,
) -> list[CalendarDay]:
    """Days with at least one session, in order; each day's events in order of their first
    session that day. Public: only published, not cancelled, events."""
    zone = _zone(time_zone)
    start, end = month_bounds(year, month, zone)
    query = (
        select(EventSession, Event)
        .join(Event, col(Event.id) == col(EventSession.event_id))
        .where(
            col(EventSession.starts_at) >= start,
            col(EventSession.starts_at) < end,
            col(EventSession.status) != SessionStatus.CANCELLED,
            col(Event.status).in_(PUBLISHED_STATUSES),
        )
        .order_by(col(EventSession.starts_at), col(EventSession.id))
        .limit(MAX_SESSIONS)
    )
    if tenant_id:
        query = query.where(col(Event.tenant_id) == tenant_id)
    if city and city.strip():
        query = query.where(col(Event.city) == city.strip())
    async with db.read() as session:
        rows = (await session.exec(query)).all()
    days: dict[date, CalendarDay] = {}
    for event_session, event in rows:
        day = event_session.starts_at.astimezone(zone).date()
        entry = days.setdefault(day, CalendarDay(day, [], []))
        entry.sessions.append(event_session)
        if all(e.id != event.id for e in entry.events):
            entry.events.append(event)
    return list(days.values())
