"""Root fields of the catalog: browsing and search, event pages, home, calendar, want-to-see,
availability, and the organizers' admin mutations."""

from __future__ import annotations

from typing import Any

import strawberry

from boxoffice.clock import utcnow
from boxoffice.models.events import TierStatus
from boxoffice.schema.availability import SessionAvailability
from boxoffice.schema.catalog import (
    Banner,
    CalendarDay,
    Event,
    EventConnection,
    Home,
    Recommendation,
    SeatMap,
    Session,
    TicketTier,
    Venue,
)
from boxoffice.schema.catalog_inputs import (
    CreateBannerInput,
    CreateEventInput,
    CreateRecommendationInput,
    CreateSeatMapInput,
    CreateSessionInput,
    CreateTicketTierInput,
    CreateVenueInput,
    EventFilter,
    EventSort,
    UpdateEventInput,
    UpdateSessionInput,
    UpdateTicketTierInput,
    UpdateVenueInput,
)
from boxoffice.schema.context import Info
from boxoffice.services import (
    availability,
    banners,
    calendar,
    event_sessions,
    events,
    home,
    recommendations,
    search,
    seat_maps,
    tiers,
    venues,
)
from boxoffice.services.pagination import Page
from boxoffice.services.viewer import Viewer


async def _event_connection(
    info: Info,
    viewer: Viewer,
    query: search.EventQuery,
    sort: EventSort | None,
    first: int | None,
    after: str | None,
) -> EventConnection:
    db = info.context.rt.db
    now = utcnow()
    page: Page[Any] = await search.search_events(
        db=db,
        viewer=viewer,
        query=query,
        sort=sort.to_sort() if sort else None,
        first=first,
        after=after,
        now=now,
    )
    return EventConnection.of(
        page,
        Event.from_model,
        after=after,
        total=lambda: search.count_events(db=db, viewer=viewer, query=query, now=now),
        _facets=lambda: search.event_facets(db=db, viewer=viewer, query=query, now=now),
    )


@strawberry.type
class CatalogQuery:
    @strawberry.field(description="Browse and search events (published ones, drafts for staff).")
    async def events(
        self,
        info: Info,
        filter: EventFilter | None = None,
        sort: EventSort | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> EventConnection:
        query = (filter or EventFilter()).to_query()
        return await _event_connection(info, await info.context.viewer(), query, sort, first, after)

    @strawberry.field(
        description="An event page (cached briefly; availability and statuses never are)."
    )
    async def event(self, info: Info, id: strawberry.ID) -> Event | None:
        context = info.context
        detail = await events.get_event_detail(
            db=context.rt.db,
            cache=context.rt.catalog_cache,
            viewer=await context.viewer(),
            event_id=id,
            views=context.rt.view_counts,
        )
        if context.recording is not None:
            context.recording.viewed(detail.event.id)  # a cached answer counts it on each hit
        loaders = context.loaders
        loaders.event_by_id.prime(detail.event.id, detail.event)
        loaders.sessions_by_event.prime(detail.event.id, detail.sessions)
        if detail.venue is not None:
            loaders.venue_by_id.prime(detail.venue.id, detail.venue)
        for session in detail.sessions:
            loaders.session_by_id.prime(session.id, session)
            loaders.tiers_by_session.prime(session.id, detail.tiers.get(session.id, []))
        return Event.from_model(detail.event)

    @strawberry.field(description="Home page of a city and/or a tenant.")
    async def home(
        self, info: Info, city: str | None = None, tenant_id: strawberry.ID | None = None
    ) -> Home:
        feed = await home.get_home(
            db=info.context.rt.db,
            cache=info.context.rt.catalog_cache,
            city=city,
            tenant_id=tenant_id,
        )
        return Home.from_feed(feed)

    @strawberry.field(description="Days of a month with sessions of published events.")
    async def event_calendar(
        self,
        info: Info,
        year: int,
        month: int,
        tenant_id: strawberry.ID | None = None,
        city: str | None = None,
        time_zone: str = calendar.DEFAULT_TIME_ZONE,
    ) -> list[CalendarDay]:
        days = await calendar.event_calendar(
            db=info.context.rt.db,
            year=year,
            month=month,
            tenant_id=tenant_id,
            city=city,
            time_zone=time_zone,
        )
        return [CalendarDay.from_day(day) for day in days]

    @strawberry.field(description="Events the signed-in user marked 想看.")
    async def my_want_to_see(
        self,
        info: Info,
        sort: EventSort | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> EventConnection:
        viewer = await info.context.viewer()
        user_id = viewer.require_user()
        query = EventFilter().to_query(wanted_by=user_id)
        return await _event_connection(info, viewer, query, sort, first, after)

    @strawberry.field(description="A session with its tiers and seat map.")
    async def session(self, info: Info, id: strawberry.ID) -> Session | None:
        found, _ = await event_sessions.get_session(
            db=info.context.rt.db, viewer=await info.context.viewer(), session_id=id
        )
        return Session.from_model(found)

    @strawberry.field(description="What a session has left to sell, now (public, never cached).")
    async def session_availability(
        self, info: Info, session_id: strawberry.ID
    ) -> SessionAvailability:
        db = info.context.rt.db
        await event_sessions.get_session(
            db=db, viewer=await info.context.viewer(), session_id=session_id
        )
        value = await availability.session_availability(
            db=db,
            ledger=info.context.rt.backends.ledger,
            rules_cache=info.context.rt.session_rules,
            session_id=session_id,
        )
        return SessionAvailability.from_value(value)

    @strawberry.field(description="A venue (its tenant's staff, agents, operators).")
    async def venue(self, info: Info, id: strawberry.ID) -> Venue | None:
        found = await venues.get_venue(
            db=info.context.rt.db, viewer=await info.context.viewer(), venue_id=id
        )
        return Venue.from_model(found)

    @strawberry.field(description="The venues the caller manages.")
    async def venues(
        self, info: Info, tenant_id: strawberry.ID | None = None, city: str | None = None
    ) -> list[Venue]:
        found = await venues.list_venues(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            city=city,
        )
        return [Venue.from_model(v) for v in found]

    @strawberry.field(description="A seat map (its tenant's staff, agents, operators).")
    async def seat_map(self, info: Info, id: strawberry.ID) -> SeatMap | None:
        found = await seat_maps.get_seat_map(
            db=info.context.rt.db, viewer=await info.context.viewer(), seat_map_id=id
        )
        return SeatMap.from_model(found)


@strawberry.type
class CatalogMutation:
    @strawberry.mutation(description="ORGANIZER of the tenant or OPERATOR.")
    async def create_venue(self, info: Info, input: CreateVenueInput) -> Venue:
        venue = await venues.create_venue(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=input.tenant_id,
            name=input.name,
            city=input.city,
            address=input.address,
            latitude=input.latitude,
            longitude=input.longitude,
            capacity=input.capacity,
        )
        return Venue.from_model(venue)

    @strawberry.mutation
    async def update_venue(self, info: Info, id: strawberry.ID, input: UpdateVenueInput) -> Venue:
        rt = info.context.rt
        venue = await venues.update_venue(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            venue_id=id,
            name=input.name,
            city=input.city,
            address=input.address,
            latitude=input.latitude,
            longitude=input.longitude,
            capacity=input.capacity,
        )
        return Venue.from_model(venue)

    @strawberry.mutation(description="ORGANIZER of the venue's tenant, AGENT or OPERATOR.")
    async def create_seat_map(self, info: Info, input: CreateSeatMapInput) -> SeatMap:
        seat_map = await seat_maps.create_seat_map(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            venue_id=input.venue_id,
            name=input.name,
            sections=[s.to_spec() for s in input.sections],
        )
        return SeatMap.from_model(seat_map)

    @strawberry.mutation(description="A DRAFT event of the tenant.")
    async def create_event(self, info: Info, input: CreateEventInput) -> Event:
        event = await events.create_event(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=input.tenant_id,
            title=input.title,
            category=input.category,
            city=input.city,
            venue_id=input.venue_id,
            description=input.description,
            poster_url=input.poster_url,
            performers=input.performers,
            tags=input.tags,
        )
        return Event.from_model(event)

    @strawberry.mutation
    async def update_event(self, info: Info, id: strawberry.ID, input: UpdateEventInput) -> Event:
        rt = info.context.rt
        event = await events.update_event(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            event_id=id,
            title=input.title,
            category=input.category,
            city=input.city,
            venue_id=input.venue_id,
            description=input.description,
            poster_url=input.poster_url,
            performers=input.performers,
            tags=input.tags,
        )
        return Event.from_model(event)

    @strawberry.mutation(description="On sale once a session's saleStartsAt has passed.")
    async def publish_event(self, info: Info, id: strawberry.ID) -> Event:
        rt = info.context.rt
        event = await events.publish_event(
            db=rt.db, cache=rt.catalog_cache, viewer=await info.context.viewer(), event_id=id
        )
        return Event.from_model(event)

    @strawberry.mutation(description="CANCELLED, with all its sessions (final).")
    async def cancel_event(self, info: Info, id: strawberry.ID, reason: str | None = None) -> Event:
        rt = info.context.rt
        event = await events.cancel_event(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            event_id=id,
            reason=reason,
        )
        return Event.from_model(event)

    @strawberry.mutation
    async def create_session(self, info: Info, input: CreateSessionInput) -> Session:
        rt = info.context.rt
        created = await event_sessions.create_session(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            event_id=input.event_id,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            sale_starts_at=input.sale_starts_at,
            sale_ends_at=input.sale_ends_at,
            seat_map_id=input.seat_map_id,
            queue_enabled=bool(input.queue_enabled),
            queue_admit_per_second=input.queue_admit_per_second,
            purchase_limit=input.purchase_limit,
        )
        return Session.from_model(created)

    @strawberry.mutation
    async def update_session(
        self, info: Info, id: strawberry.ID, input: UpdateSessionInput
    ) -> Session:
        rt = info.context.rt
        updated = await event_sessions.update_session(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            session_id=id,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            sale_starts_at=input.sale_starts_at,
            sale_ends_at=input.sale_ends_at,
            clear_sale_ends_at=input.clear_sale_ends_at,
            seat_map_id=input.seat_map_id,
            queue_enabled=input.queue_enabled,
            queue_admit_per_second=input.queue_admit_per_second,
            purchase_limit=input.purchase_limit,
        )
        return Session.from_model(updated)

    @strawberry.mutation(description="Refused when a tier has sales.")
    async def delete_session(self, info: Info, id: strawberry.ID) -> bool:
        rt = info.context.rt
        await event_sessions.delete_session(
            db=rt.db, cache=rt.catalog_cache, viewer=await info.context.viewer(), session_id=id
        )
        return True

    @strawberry.mutation(
        description="General admission (`capacity`) or seated (`sections` of the seat map)."
    )
    async def create_ticket_tier(self, info: Info, input: CreateTicketTierInput) -> TicketTier:
        rt = info.context.rt
        tier = await tiers.create_tier(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            session_id=input.session_id,
            name=input.name,
            price=input.price,
            capacity=input.capacity,
            sections=input.sections,
            original_price=input.original_price,
            description=input.description,
            limit_per_order=input.limit_per_order,
            sort_order=input.sort_order,
            status=input.status or TierStatus.ACTIVE,
        )
        return TicketTier.from_model(tier)

    @strawberry.mutation
    async def update_ticket_tier(
        self, info: Info, id: strawberry.ID, input: UpdateTicketTierInput
    ) -> TicketTier:
        rt = info.context.rt
        tier = await tiers.update_tier(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            tier_id=id,
            name=input.name,
            price=input.price,
            original_price=input.original_price,
            capacity=input.capacity,
            description=input.description,
            limit_per_order=input.limit_per_order,
            sort_order=input.sort_order,
            status=input.status,
        )
        return TicketTier.from_model(tier)

    @strawberry.mutation(description="Refused when the tier has sales (disable it instead).")
    async def delete_ticket_tier(self, info: Info, id: strawberry.ID) -> bool:
        rt = info.context.rt
        await tiers.delete_tier(
            db=rt.db, cache=rt.catalog_cache, viewer=await info.context.viewer(), tier_id=id
        )
        return True

    @strawberry.mutation(description="Take seats of a session off sale, or put them back.")
    async def set_seats_blocked(
        self, info: Info, session_id: strawberry.ID, seat_ids: list[strawberry.ID], blocked: bool
    ) -> Session:
        rt = info.context.rt
        updated = await tiers.set_seats_blocked(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            session_id=session_id,
            seat_ids=seat_ids,
            blocked=blocked,
        )
        return Session.from_model(updated)

    @strawberry.mutation(description="Platform banners: OPERATOR; a tenant's: its ORGANIZER.")
    async def create_banner(self, info: Info, input: CreateBannerInput) -> Banner:
        rt = info.context.rt
        banner = await banners.create_banner(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            title=input.title,
            image_url=input.image_url,
            link_url=input.link_url,
            event_id=input.event_id,
            tenant_id=input.tenant_id,
            city=input.city,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            sort_order=input.sort_order,
        )
        return Banner.from_model(banner)

    @strawberry.mutation
    async def delete_banner(self, info: Info, id: strawberry.ID) -> bool:
        rt = info.context.rt
        await banners.delete_banner(
            db=rt.db, cache=rt.catalog_cache, viewer=await info.context.viewer(), banner_id=id
        )
        return True

    @strawberry.mutation(description="Platform slots: OPERATOR; a tenant's: its ORGANIZER.")
    async def create_recommendation(
        self, info: Info, input: CreateRecommendationInput
    ) -> Recommendation:
        rt = info.context.rt
        slot = await recommendations.create_recommendation(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            event_id=input.event_id,
            tenant_id=input.tenant_id,
            city=input.city,
            reason=input.reason,
            starts_at=input.starts_at,
            ends_at=input.ends_at,
            sort_order=input.sort_order,
        )
        return Recommendation.from_model(slot)

    @strawberry.mutation
    async def delete_recommendation(self, info: Info, id: strawberry.ID) -> bool:
        rt = info.context.rt
        await recommendations.delete_recommendation(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            recommendation_id=id,
        )
        return True

    @strawberry.mutation(description="Mark an event 想看 (want: true) or unmark it.")
    async def mark_want_to_see(self, info: Info, event_id: strawberry.ID, want: bool) -> Event:
        event = await events.mark_want_to_see(
            db=info.context.rt.db, viewer=await info.context.viewer(), event_id=event_id, want=want
        )
        return Event.from_model(event)
