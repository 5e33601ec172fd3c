"""The blacklist: users, device ids and IP addresses refused by the waiting room."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, ref_field, time_field


class BlacklistKind(StrEnum):
    USER = "USER"  # a user id
    DEVICE = "DEVICE"  # a client's device id, as sent to joinQueue
    IP = "IP"  # an IPv4 or IPv6 address, stored in its compressed form


class BlacklistEntry(SQLModel, table=True):
    __tablename__ = "blacklist"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: str = id_field()
    kind: BlacklistKind = enum_field(BlacklistKind.USER)
    value: str = Field(max_length=128)
    reason: str | None = Field(default=None, max_length=500)
    created_by: str | None = ref_field("users.id", nullable=True)
    created_at: datetime = time_field(now=True)
