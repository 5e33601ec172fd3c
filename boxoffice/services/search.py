"""Browsing and searching events: filters, sorts, keyset pages, counts and facets.

Filters combine with AND: ``keyword`` (every whitespace-separated term in the title,
performers, venue name, tags or city; see ``search_text``), ``city``, ``category``,
``tenant_id``, ``statuses`` (default: what is live — UPCOMING, ON_SALE, SOLD_OUT; for a
user's want-to-see list, every published status), and a date range matching events with a
session starting in ``[date_from, date_to]``. Drafts show only to their tenant's staff and to
operators, and only when asked for by status.

Sorts: START_TIME (first session, ascending), POPULARITY (want-to-see, then views,
descending), PRICE (lowest active tier price, ascending), NEWEST (published, descending); each
can be reversed. Pages are keyset pages (``pagination``) ending on the id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput
from boxoffice.models.base import UTCDateTime
from boxoffice.models.events import (
    Event,
    EventCategory,
    EventSession,
    EventStatus,
    SessionStatus,
    WantToSee,
)
from boxoffice.services import validation
from boxoffice.services.catalog_access import visible_events_condition
from boxoffice.services.catalog_statuses import event_status_condition, live_condition
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.search_text import keyword_condition, keyword_terms
from boxoffice.services.viewer import Viewer

FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
NO_PRICE = 2**62
MAX_FACETS = 50


class EventSortField(StrEnum):
    START_TIME = "START_TIME"
    POPULARITY = "POPULARITY"
    PRICE = "PRICE"
    NEWEST = "NEWEST"


@dataclass(frozen=True)
class EventSort:
    field: EventSortField = EventSortField.START_TIME
    reverse: bool = False


@dataclass(frozen=True)
class EventQuery:
    keyword: str | None = None
    city: str | None = None
    category: EventCategory | None = None
    tenant_id: str | None = None
    statuses: Sequence[EventStatus] = ()
    date_from: datetime | None = None
    date_to: datetime | None = None
    wanted_by: str | None = None
    terms: list[str] = field(default_factory=list)

    def checked(self) -> EventQuery:
        """Validated and normalised (BAD_USER_INPUT naming ``filter.<field>``)."""
        date_from = (
            validation.aware(self.date_from, field="filter.dateFrom") if self.date_from else None
        )
        date_to = validation.aware(self.date_to, field="filter.dateTo") if self.date_to else None
        if date_from and date_to and date_to < date_from:
            raise BadUserInput("dateTo comes before dateFrom", field="filter.dateTo")
        city = self.city.strip() if self.city else None
        return EventQuery(
            keyword=self.keyword,
            city=city or None,
            category=self.category,
            tenant_id=self.tenant_id,
            statuses=tuple(dict.fromkeys(self.statuses)),
            date_from=date_from,
            date_to=date_to,
            wanted_by=self.wanted_by,
            terms=keyword_terms(self.keyword),
        )


@dataclass(frozen=True)
class FacetCount:
    value: str
    count: int


@dataclass(frozen=True)
class EventFacets:
    cities: list[FacetCount]
    categories: list[FacetCount]


def conditions(
    query: EventQuery, viewer: Viewer, now: datetime, *, without: str | None = None
) -> list[ColumnElement[bool]]:
    """The WHERE terms of a (checked) query; ``without`` leaves one dimension out (facets)."""
    out: list[ColumnElement[bool]] = []
    visible = visible_events_condition(viewer)
    if visible is not None:
        out.append(visible)
    if query.statuses:
        out.append(or_(*(event_status_condition(s, now) for s in query.statuses)))
    elif query.wanted_by:
        out.append(col(Event.status) != EventStatus.DRAFT)
    else:
        out.append(live_condition(now))
    if query.terms:
        out.append(keyword_condition(query.terms))
    if query.city and without != "city":
        out.append(col(Event.city) == query.city)
    if query.category and without != "category":
        out.append(col(Event.category) == query.category)
    if query.tenant_id:
        out.append(col(Event.tenant_id) == query.tenant_id)
    if query.date_from or query.date_to:
        in_range = [
            col(EventSession.event_id) == col(Event.id),
            col(EventSession.status) != SessionStatus.CANCELLED,
        ]
        if query.date_from:
            in_range.append(col(EventSession.starts_at) >= query.date_from)
        if query.date_to:
            in_range.append(col(EventSession.starts_at) <= query.date_to)
        out.append(exists().where(and_(*in_range)))
    if query.wanted_by:
        out.append(
            exists().where(
                col(WantToSee.event_id) == col(Event.id), col(WantToSee.user_id) == query.wanted_by
            )
        )
    return out


def sort_keys(sort: EventSort) -> list[SortKey[Event]]:
    far = literal(FAR_FUTURE, UTCDateTime())
    if sort.field == EventSortField.POPULARITY:
        keys: list[SortKey[Event]] = [
            SortKey(col(Event.want_count), lambda e: e.want_count, "int", descending=True),
            SortKey(col(Event.view_count), lambda e: e.view_count, "int", descending=True),
            SortKey(col(Event.id), lambda e: e.id, descending=True),
        ]
    elif sort.field == EventSortField.PRICE:
        keys = [
            SortKey(
                func.coalesce(col(Event.min_price_minor), NO_PRICE),
                lambda e: NO_PRICE if e.min_price_minor is None else e.min_price_minor,
                "int",
            ),
            SortKey(col(Event.id), lambda e: e.id),
        ]
    elif sort.field == EventSortField.NEWEST:
        keys = [
            SortKey(
                func.coalesce(col(Event.published_at), col(Event.created_at)),
                lambda e: e.published_at or e.created_at,
                "datetime",
                descending=True,
            ),
            SortKey(col(Event.id), lambda e: e.id, descending=True),
        ]
    else:
        keys = [
            SortKey(
                func.coalesce(col(Event.starts_at), far),
                lambda e: e.starts_at or FAR_FUTURE,
                "datetime",
            ),
            SortKey(col(Event.id), lambda e: e.id),
        ]
    if sort.reverse:
        keys = [SortKey(k.expr, k.value, k.kind, not k.descending) for k in keys]
    return keys


async def search_events(
    *,
    db: Database,
    viewer: Viewer,
    query: EventQuery,
    sort: EventSort | None = None,
    first: int | None = None,
    after: str | None = None,
    now: datetime | None = None,
) -> Page[Event]:
    """One page of events (one query)."""
    now = now or utcnow()
    size = page_size(first, maximum=50)
    keys = sort_keys(sort or EventSort())
    statement: Any = select(Event).where(*conditions(query, viewer, now))
    statement = apply_keyset(statement, keys, after=after).limit(size + 1)
    async with db.read() as session:
        rows = list((await session.exec(statement)).all())
    return Page.from_rows(rows, keys, size)


async def count_events(
    *, db: Database, viewer: Viewer, query: EventQuery, now: datetime | None = None
) -> int:
    now = now or utcnow()
    statement = select(func.count()).select_from(Event).where(*conditions(query, viewer, now))
    async with db.read() as session:
        return int((await session.exec(statement)).one())


async def event_facets(
    *, db: Database, viewer: Viewer, query: EventQuery, now: datetime | None = None
) -> EventFacets:
    """Counts per city and per category. Each dimension is counted under the filter without
    its own criterion, so a client filtering on one city still sees the other cities."""
    now = now or utcnow()
    out: dict[str, list[FacetCount]] = {}
    async with db.read() as session:
        for name, column in (("city", col(Event.city)), ("category", col(Event.category))):
            counted = func.count().label("n")
            statement = (
                select(column, counted)
                .where(*conditions(query, viewer, now, without=name))
                .group_by(column)
                .order_by(counted.desc(), column)
                .limit(MAX_FACETS)
            )
            rows = (await session.exec(statement)).all()
            out[name] = [FacetCount(str(value), int(n)) for value, n in rows]
    return EventFacets(cities=out["city"], categories=out["category"])
