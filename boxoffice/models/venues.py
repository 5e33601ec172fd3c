"""Venues and their seat maps: a seat map is one drawing of a venue, its seats are rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import id_field, json_field, ref_field, time_field


class Venue(SQLModel, table=True):
    __tablename__ = "venues"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    name: str = Field(max_length=100)
    city: str = Field(max_length=64, index=True)
    address: str = Field(max_length=300)
    latitude: float | None = None
    longitude: float | None = None
    capacity: int = Field(default=0)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class SeatMap(SQLModel, table=True):
    """``layout`` holds the drawing's metadata: ``sections`` in display order (name, row labels
    in order, seat count, bounds) and the overall ``bounds``; the seats are ``Seat`` rows."""

    __tablename__ = "seat_maps"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    venue_id: str = ref_field("venues.id")
    name: str = Field(max_length=100)
    created_by: str | None = Field(default=None, max_length=26)
    layout: dict[str, Any] = json_field(dict)
    seat_count: int = Field(default=0)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class Seat(SQLModel, table=True):
    """One seat of a seat map. ``ordinal`` is its position in the map's drawing order (sections
    in layout order, rows in order, numbers ascending): packed seat arrays follow it."""

    __tablename__ = "seats"
    __table_args__ = (UniqueConstraint("seat_map_id", "section", "row_label", "number"),)

    id: str = id_field()
    seat_map_id: str = ref_field("seat_maps.id", index=False)
    ordinal: int
    section: str = Field(max_length=32)
    row_label: str = Field(max_length=8)
    number: int
    label: str = Field(max_length=64)
    x: float
    y: float
    wheelchair: bool = False
    companion: bool = False
    restricted_view: bool = False
