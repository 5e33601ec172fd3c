"""Events (项目), their sessions (场次), ticket tiers (票档) and the seats each session sells.

Every row a tenant owns carries ``tenant_id`` so scoping is one ``WHERE``. An event keeps a
few aggregates of its sessions and tiers (first start, last end, first sale start, price range)
so lists filter and sort on indexed columns; the services refresh them in the transaction that
changes a session or a tier.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, Text
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, json_field, ref_field, time_field


class EventCategory(StrEnum):
    CONCERT = "CONCERT"
    THEATRE = "THEATRE"
    MUSICAL = "MUSICAL"
    STANDUP = "STANDUP"
    DANCE = "DANCE"
    SPORTS = "SPORTS"
    EXHIBITION = "EXHIBITION"
    FAMILY = "FAMILY"
    OTHER = "OTHER"


class EventStatus(StrEnum):
    DRAFT = "DRAFT"
    UPCOMING = "UPCOMING"
    ON_SALE = "ON_SALE"
    SOLD_OUT = "SOLD_OUT"
    CANCELLED = "CANCELLED"
    ENDED = "ENDED"


PUBLISHED_STATUSES = frozenset(
    {EventStatus.UPCOMING, EventStatus.ON_SALE, EventStatus.SOLD_OUT, EventStatus.ENDED}
)


class SessionStatus(StrEnum):
    SCHEDULED = "SCHEDULED"
    ON_SALE = "ON_SALE"
    SOLD_OUT = "SOLD_OUT"
    SALE_CLOSED = "SALE_CLOSED"
    ENDED = "ENDED"
    CANCELLED = "CANCELLED"


class TierStatus(StrEnum):
    ACTIVE = "ACTIVE"
    HIDDEN = "HIDDEN"
    DISABLED = "DISABLED"


class SeatStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    HELD = "HELD"
    SOLD = "SOLD"
    BLOCKED = "BLOCKED"


class Event(SQLModel, table=True):
    """``search_text`` is the normalised text keyword search matches (title, performers,
    venue name, tags, city): a trigram GIN index on PostgreSQL accelerates it."""

    __tablename__ = "events"
    __table_args__ = (
        Index(
            "ix_events_search_text_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        ),
    )

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    venue_id: str = ref_field("venues.id")
    title: str = Field(max_length=200)
    description: str = Field(default="", sa_type=Text)
    poster_url: str | None = Field(default=None, max_length=500)
    category: EventCategory = enum_field(EventCategory.OTHER, index=True)
    city: str = Field(max_length=64, index=True)
    performers: list[str] = json_field(list)
    tags: list[str] = json_field(list)
    status: EventStatus = enum_field(EventStatus.DRAFT, index=True)
    view_count: int = Field(default=0)
    want_count: int = Field(default=0)
    published_at: datetime | None = time_field()
    cancelled_at: datetime | None = time_field()
    cancel_reason: str | None = Field(default=None, max_length=500)
    starts_at: datetime | None = time_field(index=True)
    ends_at: datetime | None = time_field(index=True)
    sale_starts_at: datetime | None = time_field(index=True)
    min_price_minor: int | None = None
    max_price_minor: int | None = None
    search_text: str = Field(default="", sa_type=Text)
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class EventSession(SQLModel, table=True):
    """A performance of an event (场次). ``sale_ends_at`` null means the sale runs until the
    performance starts."""

    __tablename__ = "sessions"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    event_id: str = ref_field("events.id")
    starts_at: datetime = time_field(nullable=False, index=True)
    ends_at: datetime = time_field(nullable=False)
    sale_starts_at: datetime = time_field(nullable=False)
    sale_ends_at: datetime | None = time_field()
    queue_enabled: bool = False
    queue_admit_per_second: int | None = None
    status: SessionStatus = enum_field(SessionStatus.SCHEDULED)
    purchase_limit: int | None = None
    seat_map_id: str | None = ref_field("seat_maps.id", nullable=True)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)

    @property
    def sale_closes_at(self) -> datetime:
        return self.sale_ends_at or self.starts_at


class TicketTier(SQLModel, table=True):
    """A price level of a session (票档). ``reserved`` is the database capacity counter the
    orders take with ``UPDATE ... SET reserved = reserved + :n WHERE reserved + :n <=
    capacity``; nothing else writes it. A seated tier sells the seats of its ``sections``
    (``SessionSeat`` rows), and its capacity is their count, blocked seats excluded."""

    __tablename__ = "ticket_tiers"
    __table_args__ = (
        CheckConstraint("reserved >= 0 AND reserved <= capacity", name="ck_ticket_tiers_reserved"),
    )

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    session_id: str = ref_field("sessions.id")
    name: str = Field(max_length=64)
    description: str | None = Field(default=None, max_length=500)
    price_minor: int
    original_price_minor: int | None = None
    currency: str = Field(default="CNY", max_length=3)
    capacity: int
    reserved: int = Field(default=0)
    seated: bool = False
    sections: list[str] = json_field(list)
    limit_per_order: int = Field(default=6)
    sort_order: int = Field(default=0)
    status: TierStatus = enum_field(TierStatus.ACTIVE)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class SessionSeat(SQLModel, table=True):
    """A seat one session sells: its tier (null only for a blocked seat outside every tier)
    and whether it is blocked. One row per seat and session, so a seat is in one tier."""

    __tablename__ = "session_seats"

    session_id: str = ref_field("sessions.id", index=False, primary_key=True)
    seat_id: str = ref_field("seats.id", index=False, primary_key=True)
    tier_id: str | None = ref_field("ticket_tiers.id", nullable=True)
    blocked: bool = False


class WantToSee(SQLModel, table=True):
    """A user's 想看 mark on an event (``Event.want_count`` counts them)."""

    __tablename__ = "want_to_see"

    user_id: str = ref_field("users.id", index=False, primary_key=True)
    event_id: str = ref_field("events.id", primary_key=True)
    created_at: datetime = time_field(now=True)
