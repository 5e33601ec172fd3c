"""The waitlist (候补): people waiting for a sold-out tier, and the offers made to them.

One live entry per person per tier: ``active_key`` (``<tier>:<user>``) is set while the entry
is WAITING or OFFERED and NULL once it ended, under a unique constraint. Entries are served
by ``priority`` (higher first), then by when they joined.

An offer is a hold in the person's name (``offer_hold_id``, in the seat ledger) of the units
that came back, until ``offer_expires_at``; the person orders with its token like any hold.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, json_field, ref_field, time_field


class WaitlistStatus(StrEnum):
    WAITING = "WAITING"
    OFFERED = "OFFERED"  # a hold awaits the person's order
    FULFILLED = "FULFILLED"  # the order placed with the offer was paid
    EXPIRED = "EXPIRED"  # the offer lapsed (or its order went unpaid): passed to the next
    LEFT = "LEFT"  # the person left the waitlist


LIVE_WAITLIST_STATUSES = frozenset({WaitlistStatus.WAITING, WaitlistStatus.OFFERED})


class WaitlistEntry(SQLModel, table=True):
    __tablename__ = "waitlist_entries"
    __table_args__ = (
        Index("ix_waitlist_tier_status_priority", "tier_id", "status", "priority", "joined_at"),
        Index("ix_waitlist_status_offer_expires", "status", "offer_expires_at"),
        Index("ix_waitlist_user_joined", "user_id", "joined_at"),
    )

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id", index=False)
    event_id: str = ref_field("events.id", index=False)
    session_id: str = ref_field("sessions.id", index=False)
    tier_id: str = ref_field("ticket_tiers.id", index=False)
    user_id: str = ref_field("users.id", index=False)
    quantity: int
    priority: int = Field(default=0)
    status: WaitlistStatus = enum_field(WaitlistStatus.WAITING)
    active_key: str | None = Field(default=None, max_length=60, unique=True)
    joined_at: datetime = time_field(now=True)
    offered_at: datetime | None = time_field()
    offer_hold_id: str | None = Field(default=None, max_length=26, unique=True)
    offer_expires_at: datetime | None = time_field()
    offer_seat_ids: list[str] = json_field(list)
    order_id: str | None = Field(default=None, max_length=26)
    ended_at: datetime | None = time_field()
    updated_at: datetime = time_field(now=True)
