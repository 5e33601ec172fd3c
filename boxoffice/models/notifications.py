"""Notifications: what a person was told about an outbox event, on which channel.

One row per ``(event_id, channel, user_id)``: the unique key is what makes delivery exactly
once per recipient and channel even when the dispatcher re-runs an event. ``IN_APP`` rows are
the in-app messages (``myNotifications``); ``SMS`` and ``EMAIL`` rows are the record of what
was handed to the provider.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import encrypted_field, enum_field, id_field, ref_field, time_field


class NotificationChannel(StrEnum):
    IN_APP = "IN_APP"
    SMS = "SMS"
    EMAIL = "EMAIL"


class NotificationStatus(StrEnum):
    SENDING = "SENDING"  # handed to a provider that cannot join our transaction; not confirmed
    SENT = "SENT"


class Notification(SQLModel, table=True):
    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "channel", "user_id"),
        Index("ix_notifications_user_channel_created", "user_id", "channel", "created_at"),
    )

    id: str = id_field()
    event_id: str = Field(max_length=26, index=True)
    topic: str = Field(max_length=64)
    channel: NotificationChannel = enum_field(NotificationChannel.IN_APP)
    user_id: str = ref_field("users.id", index=False)
    tenant_id: str | None = Field(default=None, max_length=26)
    locale: str = Field(default="zh-CN", max_length=8)
    recipient: str | None = encrypted_field()  # phone or e-mail address
    title: str = Field(max_length=200)
    body: str = Field(max_length=2000)
    resource_type: str | None = Field(default=None, max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    status: NotificationStatus = enum_field(NotificationStatus.SENT)
    read_at: datetime | None = time_field()
    sent_at: datetime | None = time_field()
    created_at: datetime = time_field(now=True)
