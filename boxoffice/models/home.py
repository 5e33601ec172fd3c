"""What the home page shows besides the catalog lists: banners and recommended events.

Both are platform-wide (``tenant_id`` null, managed by operators) or belong to a tenant's own
home page; ``city`` null means every city; ``starts_at``/``ends_at`` bound when they show.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from boxoffice.models.base import id_field, ref_field, time_field


class Banner(SQLModel, table=True):
    __tablename__ = "banners"

    id: str = id_field()
    tenant_id: str | None = ref_field("tenants.id", nullable=True)
    title: str = Field(max_length=100)
    image_url: str = Field(max_length=500)
    link_url: str | None = Field(default=None, max_length=500)
    event_id: str | None = ref_field("events.id", nullable=True)
    city: str | None = Field(default=None, max_length=64, index=True)
    starts_at: datetime | None = time_field()
    ends_at: datetime | None = time_field()
    sort_order: int = Field(default=0)
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)


class Recommendation(SQLModel, table=True):
    """A recommended-events slot (运营位) pointing at one event."""

    __tablename__ = "recommendations"

    id: str = id_field()
    tenant_id: str | None = ref_field("tenants.id", nullable=True)
    event_id: str = ref_field("events.id")
    city: str | None = Field(default=None, max_length=64, index=True)
    reason: str | None = Field(default=None, max_length=100)
    starts_at: datetime | None = time_field()
    ends_at: datetime | None = time_field()
    sort_order: int = Field(default=0)
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
