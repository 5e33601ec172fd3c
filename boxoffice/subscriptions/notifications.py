from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator

import strawberry

from boxoffice.backends.broker import RESYNC, channels
from boxoffice.clock import utcnow
from boxoffice.models.notifications import Notification as NotificationRow
from boxoffice.schema.context import Info
from boxoffice.schema.notifications import Notification
from boxoffice.services import notifications
from boxoffice.subscriptions import tracked

REMEMBERED = 256


@strawberry.type
class NotificationSubscription:
    @strawberry.subscription(description="Your new in-app messages as they arrive.")
    async def notifications(self, info: Info) -> AsyncGenerator[Notification, None]:
        context = info.context
        user_id = (await context.viewer()).require_user()
        rt = context.rt
        since = utcnow()
        pushed: OrderedDict[str, None] = OrderedDict()
        async with (
            tracked(context, "notifications"),
            rt.backends.broker.subscribe(channels.user_notifications(user_id)) as messages,
        ):
            async for message in messages:
                await context.viewer()  # a revoked sign-in ends the subscription
                rows: list[NotificationRow]
                if message == RESYNC:  # pushes may have been lost: look at the newest ones
                    rows = [
                        row
                        for row in await notifications.latest(rt.db, user_id)
                        if row.created_at >= since
                    ]
                else:
                    row = await notifications.get_own(rt.db, user_id, message)
                    rows = [row] if row else []
                for row in rows:
                    if row.id in pushed:
                        continue
                    pushed[row.id] = None
                    if len(pushed) > REMEMBERED:
                        pushed.popitem(last=False)
                    yield Notification.from_model(row)
