"""GraphQL types of the catalog: venues, seat maps, events, sessions, tiers, the home page
and the calendar. Nested fields load through the request's DataLoaders."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from boxoffice.clock import utcnow
from boxoffice.models import events as m
from boxoffice.models import home as h
from boxoffice.models import venues as v
from boxoffice.schema.availability import SessionAvailability, seat_window
from boxoffice.schema.context import Info
from boxoffice.schema.enums import EventCategory, EventStatus, SeatStatus, SessionStatus, TierStatus
from boxoffice.schema.identity import Tenant
from boxoffice.schema.money import Money
from boxoffice.schema.pagination import Connection
from boxoffice.services import calendar, home, search, seat_maps
from boxoffice.services.catalog_access import is_agent, sees_drafts_of
from boxoffice.services.catalog_statuses import (
    event_status,
    next_event_boundary,
    next_session_boundary,
    session_status,
)


@strawberry.type
class SeatMapBounds:
    x: float
    y: float
    width: float
    height: float


@strawberry.type(description="A section of a seat map: its rows in order and its extent.")
class SeatSection:
    name: str
    rows: list[str]
    seat_count: int
    bounds: SeatMapBounds


@strawberry.type(description="A seat. `tierId` and `status` are set when read through a session.")
class Seat:
    id: strawberry.ID
    section: str
    row: str
    number: int
    label: str
    x: float
    y: float
    wheelchair: bool
    companion: bool
    restricted_view: bool
    tier_id: strawberry.ID | None = None
    status: SeatStatus | None = None


def _bounds(raw: dict[str, Any]) -> SeatMapBounds:
    return SeatMapBounds(
        x=float(raw.get("x", 0)),
        y=float(raw.get("y", 0)),
        width=float(raw.get("width", 0)),
        height=float(raw.get("height", 0)),
    )


@strawberry.type(description="A drawing of a venue's seats (immutable once created).")
class SeatMap:
    id: strawberry.ID
    venue_id: strawberry.ID
    name: str
    seat_count: int
    created_at: datetime
    _model: strawberry.Private[v.SeatMap]
    _session_id: strawberry.Private[str | None] = None

    @classmethod
    def from_model(cls, seat_map: v.SeatMap, session_id: str | None = None) -> SeatMap:
        return cls(
            id=strawberry.ID(seat_map.id),
            venue_id=strawberry.ID(seat_map.venue_id),
            name=seat_map.name,
            seat_count=seat_map.seat_count,
            created_at=seat_map.created_at,
            _model=seat_map,
            _session_id=session_id,
        )

    @strawberry.field(description="Sections in display order.")
    def sections(self) -> list[SeatSection]:
        return [
            SeatSection(
                name=s["name"],
                rows=list(s.get("rows", [])),
                seat_count=int(s.get("seatCount", 0)),
                bounds=_bounds(s.get("bounds", {})),
            )
            for s in self._model.layout.get("sections", [])
        ]

    @strawberry.field
    def bounds(self) -> SeatMapBounds:
        return _bounds(self._model.layout.get("bounds", {}))

    @strawberry.field
    async def venue(self, info: Info) -> Venue | None:
        venue = await info.context.loaders.venue_by_id.load(self._model.venue_id)
        return Venue.from_model(venue) if venue else None

    async def _session_state(
        self, info: Info
    ) -> tuple[dict[str, str | None], dict[str, SeatStatus]] | None:
        if self._session_id is None:
            return None
        loaders = info.context.loaders
        tiers = await loaders.seat_tiers_by_session.load(self._session_id)
        current = await loaders.availability_by_session.load(self._session_id)
        return tiers, dict(current.seats)

    @strawberry.field(
        description="Seats in drawing order, optionally of one section (at most 5000 per "
        "call; `compact` has them all). Through a session, each seat has its tier and status "
        "(BLOCKED for seats the session does not sell)."
    )
    async def seats(
        self, info: Info, section: str | None = None, first: int = 5_000, offset: int = 0
    ) -> list[Seat]:
        window = seat_window(first, offset)
        seats = await info.context.loaders.seats_by_seat_map.load(self._model.id)
        if section is not None:
            seats = [s for s in seats if s.section == section]
        state = await self._session_state(info)
        out = []
        for seat in seats[window]:
            tier_id: str | None = None
            status: SeatStatus | None = None
            if state is not None:
                tier_id = state[0].get(seat.id)
                status = state[1].get(seat.id, SeatStatus.BLOCKED)
            out.append(
                Seat(
                    id=strawberry.ID(seat.id),
                    section=seat.section,
                    row=seat.row_label,
                    number=seat.number,
                    label=seat.label,
                    x=seat.x,
                    y=seat.y,
                    wheelchair=seat.wheelchair,
                    companion=seat.companion,
                    restricted_view=seat.restricted_view,
                    tier_id=strawberry.ID(tier_id) if tier_id else None,
                    status=status,
                )
            )
        return out

    @strawberry.field(
        description="Every seat as parallel arrays: `ids`, `section` and `row` (indexes into "
        "`sections` and `rows[section]`), `number`, `x`, `y`, `flags` (bits in `flagBits`), "
        "`labels`; through a session also `tier` (index into `tierIds`, -1: none)."
    )
    async def compact(self, info: Info) -> JSON:
        seats = await info.context.loaders.seats_by_seat_map.load(self._model.id)
        packed = seat_maps.packed_seats(seats)
        if self._session_id is not None:
            tiers = await info.context.loaders.seat_tiers_by_session.load(self._session_id)
            tier_ids = sorted({t for t in tiers.values() if t is not None})
            index = {t: i for i, t in enumerate(tier_ids)}
            packed["tierIds"] = tier_ids
            packed["tier"] = [index.get(tiers.get(s.id) or "", -1) for s in seats]
        return JSON(packed)


@strawberry.type(description="A place where events happen (场馆).")
class Venue:
    id: strawberry.ID
    tenant_id: strawberry.ID
    name: str
    city: str
    address: str
    latitude: float | None
    longitude: float | None
    capacity: int
    _model: strawberry.Private[v.Venue]

    @classmethod
    def from_model(cls, venue: v.Venue) -> Venue:
        return cls(
            id=strawberry.ID(venue.id),
            tenant_id=strawberry.ID(venue.tenant_id),
            name=venue.name,
            city=venue.city,
            address=venue.address,
            latitude=venue.latitude,
            longitude=venue.longitude,
            capacity=venue.capacity,
            _model=venue,
        )

    @strawberry.field(description="The venue's seat maps (its staff, agents and operators).")
    async def seat_maps(self, info: Info) -> list[SeatMap]:
        viewer = await info.context.viewer()
        if not (is_agent(viewer) or viewer.can_staff(self._model.tenant_id)):
            return []
        found = await info.context.loaders.seat_maps_by_venue.load(self._model.id)
        return [SeatMap.from_model(s) for s in found]


@strawberry.type(description="A price level of a session (票档).")
class TicketTier:
    id: strawberry.ID
    session_id: strawberry.ID
    name: str
    description: str | None
    price: Money
    original_price: Money | None
    capacity: int
    seated: bool
    sections: list[str]
    limit_per_order: int
    sort_order: int
    status: TierStatus
    _model: strawberry.Private[m.TicketTier]

    @classmethod
    def from_model(cls, tier: m.TicketTier) -> TicketTier:
        return cls(
            id=strawberry.ID(tier.id),
            session_id=strawberry.ID(tier.session_id),
            name=tier.name,
            description=tier.description,
            price=Money.from_minor(tier.price_minor, tier.currency),
            original_price=Money.optional(tier.original_price_minor, tier.currency),
            capacity=tier.capacity,
            seated=tier.seated,
            sections=list(tier.sections),
            limit_per_order=tier.limit_per_order,
            sort_order=tier.sort_order,
            status=tier.status,
            _model=tier,
        )

    @strawberry.field(description="Tickets left to sell now (never cached).")
    async def available(self, info: Info) -> int:
        if (recording := info.context.recording) is not None:
            recording.live_tier(info.path.as_list(), self._model.session_id, self._model.id)
        current = await info.context.loaders.tier_availability_by_session.load(
            self._model.session_id
        )
        left = current.tier(self._model.id)
        return 0 if left is None else left


@strawberry.type(name="Session", description="A performance of an event (场次).")
class Session:
    id: strawberry.ID
    event_id: strawberry.ID
    starts_at: datetime
    ends_at: datetime
    sale_starts_at: datetime
    queue_enabled: bool
    queue_admit_per_second: int | None = strawberry.field(
        description="This session's waiting-room admission rate (null: the platform default)."
    )
    purchase_limit: int | None = strawberry.field(description="Tickets per buyer (null: none).")
    seat_map_id: strawberry.ID | None
    _model: strawberry.Private[m.EventSession]

    @classmethod
    def from_model(cls, session: m.EventSession) -> Session:
        return cls(
            id=strawberry.ID(session.id),
            event_id=strawberry.ID(session.event_id),
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            sale_starts_at=session.sale_starts_at,
            queue_enabled=session.queue_enabled,
            queue_admit_per_second=session.queue_admit_per_second,
            purchase_limit=session.purchase_limit,
            seat_map_id=strawberry.ID(session.seat_map_id) if session.seat_map_id else None,
            _model=session,
        )

    @strawberry.field(description="When the sale closes (the session's start unless set).")
    def sale_ends_at(self) -> datetime:
        return self._model.sale_closes_at

    @strawberry.field(description="Derived from the clock at read time, exact at boundaries.")
    def status(self, info: Info) -> SessionStatus:
        now = utcnow()
        if (recording := info.context.recording) is not None:
            recording.until(next_session_boundary(self._model, now))
        return session_status(self._model, now)

    @strawberry.field
    async def event(self, info: Info) -> Event | None:
        found = await info.context.loaders.event_by_id.load(self._model.event_id)
        return Event.from_model(found) if found else None

    @strawberry.field(description="ACTIVE tiers; the tenant's staff see every tier.")
    async def tiers(self, info: Info) -> list[TicketTier]:
        tiers = await info.context.loaders.tiers_by_session.load(self._model.id)
        viewer = await info.context.viewer()
        if not sees_drafts_of(viewer, self._model.tenant_id):
            tiers = [t for t in tiers if t.status == m.TierStatus.ACTIVE]
        return [TicketTier.from_model(t) for t in tiers]

    @strawberry.field
    async def seat_map(self, info: Info) -> SeatMap | None:
        if self._model.seat_map_id is None:
            return None
        found = await info.context.loaders.seat_map_by_id.load(self._model.seat_map_id)
        return SeatMap.from_model(found, session_id=self._model.id) if found else None

    @strawberry.field(description="What is left to sell, now (never cached).")
    async def availability(self, info: Info) -> SessionAvailability:
        current = await info.context.loaders.availability_by_session.load(self._model.id)
        return SessionAvailability.from_value(current)


@strawberry.type
class PriceRange:
    min: Money
    max: Money


@strawberry.type(description="An event (项目): a show with one or more sessions.")
class Event:
    id: strawberry.ID
    tenant_id: strawberry.ID
    title: str
    description: str
    poster_url: str | None
    category: EventCategory
    city: str
    performers: list[str]
    tags: list[str]
    view_count: int
    want_count: int
    published_at: datetime | None
    starts_at: datetime | None = strawberry.field(description="Its first session's start.")
    ends_at: datetime | None = strawberry.field(description="Its last session's end.")
    sale_starts_at: datetime | None = strawberry.field(description="Its first sale's start.")
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    _model: strawberry.Private[m.Event]

    @classmethod
    def from_model(cls, event: m.Event) -> Event:
        return cls(
            id=strawberry.ID(event.id),
            tenant_id=strawberry.ID(event.tenant_id),
            title=event.title,
            description=event.description,
            poster_url=event.poster_url,
            category=event.category,
            city=event.city,
            performers=list(event.performers),
            tags=list(event.tags),
            view_count=event.view_count,
            want_count=event.want_count,
            published_at=event.published_at,
            starts_at=event.starts_at,
            ends_at=event.ends_at,
            sale_starts_at=event.sale_starts_at,
            cancel_reason=event.cancel_reason,
            created_at=event.created_at,
            updated_at=event.updated_at,
            _model=event,
        )

    @strawberry.field(description="Derived from the clock at read time, exact at boundaries.")
    def status(self, info: Info) -> EventStatus:
        now = utcnow()
        if (recording := info.context.recording) is not None:
            recording.until(next_event_boundary(self._model, now))
        return event_status(self._model, now)

    @strawberry.field(description="The lowest and highest price of its active tiers.")
    async def price_range(self, info: Info) -> PriceRange | None:
        event = self._model
        if event.min_price_minor is None or event.max_price_minor is None:
            return None
        tenant = await info.context.loaders.tenant_by_id.load(event.tenant_id)
        currency = tenant.currency if tenant else "CNY"
        return PriceRange(
            min=Money.from_minor(event.min_price_minor, currency),
            max=Money.from_minor(event.max_price_minor, currency),
        )

    @strawberry.field
    async def venue(self, info: Info) -> Venue | None:
        found = await info.context.loaders.venue_by_id.load(self._model.venue_id)
        return Venue.from_model(found) if found else None

    @strawberry.field
    async def tenant(self, info: Info) -> Tenant | None:
        found = await info.context.loaders.tenant_by_id.load(self._model.tenant_id)
        return Tenant.from_model(found) if found else None

    @strawberry.field(description="Its sessions by start time.")
    async def sessions(self, info: Info) -> list[Session]:
        found = await info.context.loaders.sessions_by_event.load(self._model.id)
        return [Session.from_model(s) for s in found]

    @strawberry.field(description="Whether the signed-in user marked it 想看.")
    async def want_to_see(self, info: Info) -> bool:
        viewer = await info.context.viewer()
        if viewer.user_id is None:
            return False
        return await info.context.loaders.want_to_see_by_user_event.load(
            (viewer.user_id, self._model.id)
        )


@strawberry.type
class FacetCount:
    value: str
    count: int


@strawberry.type(description="Counts per city and per category for the current filter.")
class EventFacets:
    cities: list[FacetCount] = strawberry.field(
        description="Per city, under the filter without its `city` (so other cities show)."
    )
    categories: list[FacetCount] = strawberry.field(
        description="Per category, under the filter without its `category`."
    )


@strawberry.type(name="EventConnection")
class EventConnection(Connection[Event]):
    _facets: strawberry.Private[Any]

    @strawberry.field
    async def facets(self) -> EventFacets:
        found: search.EventFacets = await self._facets()
        return EventFacets(
            cities=[FacetCount(value=f.value, count=f.count) for f in found.cities],
            categories=[FacetCount(value=f.value, count=f.count) for f in found.categories],
        )


@strawberry.type(description="A home-page banner.")
class Banner:
    id: strawberry.ID
    tenant_id: strawberry.ID | None
    title: str
    image_url: str
    link_url: str | None
    event_id: strawberry.ID | None
    city: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    sort_order: int

    @classmethod
    def from_model(cls, banner: h.Banner) -> Banner:
        return cls(
            id=strawberry.ID(banner.id),
            tenant_id=strawberry.ID(banner.tenant_id) if banner.tenant_id else None,
            title=banner.title,
            image_url=banner.image_url,
            link_url=banner.link_url,
            event_id=strawberry.ID(banner.event_id) if banner.event_id else None,
            city=banner.city,
            starts_at=banner.starts_at,
            ends_at=banner.ends_at,
            sort_order=banner.sort_order,
        )

    @strawberry.field
    async def event(self, info: Info) -> Event | None:
        if self.event_id is None:
            return None
        found = await info.context.loaders.event_by_id.load(str(self.event_id))
        return Event.from_model(found) if found else None


@strawberry.type(description="A recommended-event slot (运营位).")
class Recommendation:
    id: strawberry.ID
    tenant_id: strawberry.ID | None
    event_id: strawberry.ID
    city: str | None
    reason: str | None
    starts_at: datetime | None
    ends_at: datetime | None
    sort_order: int

    @classmethod
    def from_model(cls, slot: h.Recommendation) -> Recommendation:
        return cls(
            id=strawberry.ID(slot.id),
            tenant_id=strawberry.ID(slot.tenant_id) if slot.tenant_id else None,
            event_id=strawberry.ID(slot.event_id),
            city=slot.city,
            reason=slot.reason,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            sort_order=slot.sort_order,
        )


@strawberry.type(description="The home page of a city and/or a tenant.")
class Home:
    banners: list[Banner]
    recommended: list[Event]
    upcoming: list[Event] = strawberry.field(description="By their next session's start.")
    on_sale_soon: list[Event] = strawberry.field(description="Sales opening next.")

    @classmethod
    def from_feed(cls, feed: home.HomeFeed) -> Home:
        return cls(
            banners=[Banner.from_model(b) for b in feed.banners],
            recommended=[Event.from_model(e) for e in feed.recommended],
            upcoming=[Event.from_model(e) for e in feed.upcoming],
            on_sale_soon=[Event.from_model(e) for e in feed.on_sale_soon],
        )


@strawberry.type(description="One day of the event calendar.")
class CalendarDay:
    date: date
    count: int = strawberry.field(description="How many events have a session that day.")
    events: list[Event]
    sessions: list[Session]

    @classmethod
    def from_day(cls, day: calendar.CalendarDay) -> CalendarDay:
        return cls(
            date=day.date,
            count=day.count,
            events=[Event.from_model(e) for e in day.events],
            sessions=[Session.from_model(s) for s in day.sessions],
        )
