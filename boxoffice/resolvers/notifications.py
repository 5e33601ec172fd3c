"""Root fields for the caller's in-app notifications."""

from __future__ import annotations

import strawberry

from boxoffice.schema.context import Info
from boxoffice.schema.notifications import Notification, NotificationConnection
from boxoffice.services import notifications


@strawberry.type
class NotificationQuery:
    @strawberry.field(description="Your in-app messages, newest first.")
    async def my_notifications(
        self,
        info: Info,
        unread_only: bool | None = False,
        first: int | None = 20,
        after: str | None = None,
    ) -> NotificationConnection:
        db = info.context.rt.db
        viewer = await info.context.viewer()
        page = await notifications.list_notifications(
            db=db, viewer=viewer, unread_only=bool(unread_only), first=first, after=after
        )
        return NotificationConnection.of(
            page,
            Notification.from_model,
            after=after,
            total=lambda: notifications.count_notifications(
                db=db, viewer=viewer, unread_only=bool(unread_only)
            ),
            _unread=lambda: notifications.count_notifications(
                db=db, viewer=viewer, unread_only=True
            ),
        )


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(
        description="Mark your messages read (all unread ones when `ids` is null); "
        "returns how many changed."
    )
    async def mark_notifications_read(
        self, info: Info, ids: list[strawberry.ID] | None = None
    ) -> int:
        return await notifications.mark_read(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            ids=[str(i) for i in ids] if ids is not None else None,
        )
