"""GraphQL types of in-app notifications."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import strawberry

from boxoffice.models import notifications as m
from boxoffice.schema.pagination import Connection


@strawberry.type(description="An in-app message about something that happened to you.")
class Notification:
    id: strawberry.ID
    topic: str = strawberry.field(description="The event it is about, e.g. `order.paid`.")
    title: str
    body: str
    locale: str
    resource_type: str | None = strawberry.field(description="e.g. `Order`, `Refund`, `Ticket`.")
    resource_id: strawberry.ID | None
    read_at: datetime | None
    created_at: datetime

    @strawberry.field
    def read(self) -> bool:
        return self.read_at is not None

    @classmethod
    def from_model(cls, row: m.Notification) -> Notification:
        return cls(
            id=strawberry.ID(row.id),
            topic=row.topic,
            title=row.title,
            body=row.body,
            locale=row.locale,
            resource_type=row.resource_type,
            resource_id=strawberry.ID(row.resource_id) if row.resource_id else None,
            read_at=row.read_at,
            created_at=row.created_at,
        )


@strawberry.type(name="NotificationConnection")
class NotificationConnection(Connection[Notification]):
    _unread: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many of your messages are unread (over all pages).")
    async def unread_count(self) -> int:
        return await self._unread()
