"""The home page: banners, recommended events, upcoming events and sales opening soon, for a
city and/or a tenant's own home (a tenant's home shows only its banners, slots and events;
the platform home shows platform banners and slots and every tenant's events).

It shows only published events, so one cached copy per (city, tenant) serves every viewer;
admin writes invalidate it. Recommended slots come first, topped up with the most wanted
live events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.models.events import Event, EventSession, SessionStatus
from boxoffice.models.home import Banner, Recommendation
from boxoffice.services.catalog_cache import CatalogCache, home_key
from boxoffice.services.catalog_statuses import live_condition

HOME_LIST_SIZE = 10


@dataclass(frozen=True)
class HomeFeed:
    banners: list[Banner]
    recommended: list[Event]
    upcoming: list[Event]
    on_sale_soon: list[Event]


def _window(starts: object, ends: object, now: datetime) -> ColumnElement[bool]:
    return and_(
        or_(col(starts).is_(None), col(starts) <= now),
        or_(col(ends).is_(None), col(ends) > now),
    )


def _placement(
    model: type[Banner] | type[Recommendation], city: str | None, tenant_id: str | None
) -> list[ColumnElement[bool]]:
    owner = col(model.tenant_id) == tenant_id if tenant_id else col(model.tenant_id).is_(None)
    place = (
        or_(col(model.city).is_(None), col(model.city) == city)
        if city
        else col(model.city).is_(None)
    )
    return [owner, place]


def _events_where(
    city: str | None, tenant_id: str | None, now: datetime
) -> list[ColumnElement[bool]]:
    out = [live_condition(now)]
    if city:
        out.append(col(Event.city) == city)
    if tenant_id:
        out.append(col(Event.tenant_id) == tenant_id)
    return out


async def _recommended(
    session: AsyncSession, city: str | None, tenant_id: str | None, now: datetime
) -> list[Event]:
    slots = await session.exec(
        select(Event)
        .join(Recommendation, col(Recommendation.event_id) == col(Event.id))
        .where(
            *_placement(Recommendation, city, tenant_id),
            _window(Recommendation.starts_at, Recommendation.ends_at, now),
            *_events_where(city, tenant_id, now),
        )
        .order_by(col(Recommendation.sort_order), col(Recommendation.created_at).desc())
        .limit(HOME_LIST_SIZE * 2)
    )
    chosen: list[Event] = []
    for event in slots.all():
        if all(e.id != event.id for e in chosen):
            chosen.append(event)
    if len(chosen) < HOME_LIST_SIZE:
        popular = await session.exec(
            select(Event)
            .where(
                *_events_where(city, tenant_id, now), col(Event.id).not_in([e.id for e in chosen])
            )
            .order_by(col(Event.want_count).desc(), col(Event.view_count).desc(), col(Event.id))
            .limit(HOME_LIST_SIZE - len(chosen))
        )
        chosen.extend(popular.all())
    return chosen[:HOME_LIST_SIZE]


async def load_home(db: Database, city: str | None, tenant_id: str | None) -> HomeFeed:
    now = utcnow()
    async with db.read() as session:
        banners = await session.exec(
            select(Banner)
            .where(
                *_placement(Banner, city, tenant_id), _window(Banner.starts_at, Banner.ends_at, now)
            )
            .order_by(col(Banner.sort_order), col(Banner.created_at).desc())
            .limit(HOME_LIST_SIZE)
        )
        next_start = (
            select(func.min(col(EventSession.starts_at)))
            .where(
                col(EventSession.event_id) == col(Event.id),
                col(EventSession.status) != SessionStatus.CANCELLED,
                col(EventSession.starts_at) > now,
            )
            .correlate(Event)
            .scalar_subquery()
        )
        upcoming = await session.exec(
            select(Event)
            .where(*_events_where(city, tenant_id, now), next_start.is_not(None))
            .order_by(next_start, col(Event.id))
            .limit(HOME_LIST_SIZE)
        )
        soon = await session.exec(
            select(Event)
            .where(*_events_where(city, tenant_id, now), col(Event.sale_starts_at) > now)
            .order_by(col(Event.sale_starts_at), col(Event.id))
            .limit(HOME_LIST_SIZE)
        )
        return HomeFeed(
            banners=list(banners.all()),
            recommended=await _recommended(session, city, tenant_id, now),
            upcoming=list(upcoming.all()),
            on_sale_soon=list(soon.all()),
        )


async def get_home(
    *, db: Database, cache: CatalogCache, city: str | None = None, tenant_id: str | None = None
) -> HomeFeed:
    city = (city or "").strip() or None
    return await cache.get_or_load(
        home_key(city, tenant_id), lambda: load_home(db, city, tenant_id)
    )
