"""GraphQL inputs of the catalog (named after their operations) and their mapping to the
services' arguments."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from boxoffice.schema.enums import EventSortField, EventStatus, SortDirection, TierStatus
from boxoffice.services import search, seat_maps
from boxoffice.services.events import parse_category


@strawberry.input
class CreateVenueInput:
    tenant_id: strawberry.ID
    name: str
    city: str
    address: str
    latitude: float | None = None
    longitude: float | None = None
    capacity: int | None = None


@strawberry.input
class UpdateVenueInput:
    name: str | None = None
    city: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    capacity: int | None = None


@strawberry.input(description="A row: seats numbered 1..`seats`.")
class SeatRowInput:
    label: str
    seats: int


@strawberry.input(description='Rows `from`..`to` ("A".."T" or "1".."30"), `seats` each.')
class SeatRowRangeInput:
    from_: str = strawberry.field(name="from")
    to: str
    seats: int


@strawberry.input(description="One seat; without x/y it is laid out on the section's grid.")
class SeatInput:
    row: str
    number: int
    x: float | None = None
    y: float | None = None
    label: str | None = None
    wheelchair: bool = False
    companion: bool = False
    restricted_view: bool = False


@strawberry.input(description="A section: any mix of rows, row ranges and explicit seats.")
class SeatSectionInput:
    name: str
    rows: list[SeatRowInput] = strawberry.field(default_factory=list)
    row_ranges: list[SeatRowRangeInput] = strawberry.field(default_factory=list)
    seats: list[SeatInput] = strawberry.field(default_factory=list)

    def to_spec(self) -> seat_maps.SectionSpec:
        return seat_maps.SectionSpec(
            name=self.name,
            rows=[seat_maps.RowSpec(r.label, r.seats) for r in self.rows],
            row_ranges=[seat_maps.RowRangeSpec(r.from_, r.to, r.seats) for r in self.row_ranges],
            seats=[
                seat_maps.SeatSpec(
                    row=s.row,
                    number=s.number,
                    x=s.x,
                    y=s.y,
                    label=s.label,
                    wheelchair=s.wheelchair,
                    companion=s.companion,
                    restricted_view=s.restricted_view,
                )
                for s in self.seats
            ],
        )


@strawberry.input
class CreateSeatMapInput:
    venue_id: strawberry.ID
    name: str
    sections: list[SeatSectionInput]


@strawberry.input
class CreateEventInput:
    tenant_id: strawberry.ID
    title: str
    category: str = strawberry.field(description="An EventCategory name, e.g. CONCERT.")
    city: str
    venue_id: strawberry.ID
    description: str | None = None
    poster_url: str | None = None
    performers: list[str] | None = None
    tags: list[str] | None = None


@strawberry.input
class UpdateEventInput:
    title: str | None = None
    category: str | None = None
    city: str | None = None
    venue_id: strawberry.ID | None = None
    description: str | None = None
    poster_url: str | None = None
    performers: list[str] | None = None
    tags: list[str] | None = None


@strawberry.input
class CreateSessionInput:
    event_id: strawberry.ID
    starts_at: datetime
    ends_at: datetime
    sale_starts_at: datetime
    sale_ends_at: datetime | None = strawberry.field(
        default=None, description="Defaults to the session's start."
    )
    seat_map_id: strawberry.ID | None = None
    queue_enabled: bool | None = False
    queue_admit_per_second: int | None = None
    purchase_limit: int | None = None


@strawberry.input
class UpdateSessionInput:
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    clear_sale_ends_at: bool = strawberry.field(
        default=False, description="Let the sale run until the session starts again."
    )
    seat_map_id: strawberry.ID | None = None
    queue_enabled: bool | None = None
    queue_admit_per_second: int | None = None
    purchase_limit: int | None = None


@strawberry.input
class CreateTicketTierInput:
    session_id: strawberry.ID
    name: str
    price: Decimal
    capacity: int | None = strawberry.field(default=None, description="General admission.")
    sections: list[str] | None = strawberry.field(
        default=None, description="Seated: sections of the session's seat map."
    )
    original_price: Decimal | None = None
    description: str | None = None
    limit_per_order: int | None = None
    sort_order: int | None = None
    status: TierStatus | None = None


@strawberry.input
class UpdateTicketTierInput:
    name: str | None = None
    price: Decimal | None = None
    original_price: Decimal | None = None
    capacity: int | None = None
    description: str | None = None
    limit_per_order: int | None = None
    sort_order: int | None = None
    status: TierStatus | None = None


@strawberry.input
class CreateBannerInput:
    title: str
    image_url: str
    link_url: str | None = None
    event_id: strawberry.ID | None = None
    tenant_id: strawberry.ID | None = strawberry.field(
        default=None, description="A tenant's own banner; none: platform-wide (operators)."
    )
    city: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    sort_order: int = 0


@strawberry.input
class CreateRecommendationInput:
    event_id: strawberry.ID
    tenant_id: strawberry.ID | None = None
    city: str | None = None
    reason: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    sort_order: int = 0


@strawberry.input
class EventFilter:
    keyword: str | None = strawberry.field(
        default=None,
        description="Every word must appear in the title, performers, venue, tags or city.",
    )
    city: str | None = None
    category: str | None = None
    tenant_id: strawberry.ID | None = None
    status: EventStatus | None = strawberry.field(
        default=None, description="Default: UPCOMING, ON_SALE and SOLD_OUT."
    )
    statuses: list[EventStatus] | None = None
    date_from: datetime | None = strawberry.field(
        default=None, description="Events with a session starting at or after this."
    )
    date_to: datetime | None = strawberry.field(
        default=None, description="Events with a session starting at or before this."
    )

    def to_query(self, *, wanted_by: str | None = None) -> search.EventQuery:
        statuses = list(self.statuses or [])
        if self.status is not None:
            statuses.append(self.status)
        return search.EventQuery(
            keyword=self.keyword,
            city=self.city,
            category=parse_category(self.category, field="filter.category")
            if self.category
            else None,
            tenant_id=self.tenant_id,
            statuses=statuses,
            date_from=self.date_from,
            date_to=self.date_to,
            wanted_by=wanted_by,
        ).checked()


_DEFAULT_DIRECTION = {
    EventSortField.START_TIME: SortDirection.ASC,
    EventSortField.POPULARITY: SortDirection.DESC,
    EventSortField.PRICE: SortDirection.ASC,
    EventSortField.NEWEST: SortDirection.DESC,
}


@strawberry.input(
    description="START_TIME ascending, POPULARITY descending, PRICE (lowest tier) ascending, "
    "NEWEST descending, unless `direction` says otherwise."
)
class EventSort:
    field: EventSortField = EventSortField.START_TIME
    direction: SortDirection | None = None

    def to_sort(self) -> search.EventSort:
        field = EventSortField(self.field)
        default = _DEFAULT_DIRECTION[field]
        return search.EventSort(
            field=field, reverse=self.direction is not None and self.direction != default
        )
