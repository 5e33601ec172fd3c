from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from boxoffice.schema.context import Info
from boxoffice.schema.queue import QueueTicket
from boxoffice.services import waiting_room
from boxoffice.subscriptions import tracked


@strawberry.type
class QueueSubscription:
    @strawberry.subscription(
        description="Your ticket in the event's waiting room now, then whenever your position "
        "goes down; ends after the ADMITTED ticket (with its queue token). Ends with SOLD_OUT "
        "when the event sells out while you wait, NOT_FOUND when you are not in line."
    )
    async def queue_position(
        self, info: Info, event_id: strawberry.ID
    ) -> AsyncGenerator[QueueTicket, None]:
        context = info.context
        rt = context.rt
        viewer = await context.viewer()
        user_id = viewer.require_user()
        event = await rt.queue_events.get(event_id, viewer=viewer)
        rt.session_rules.warm_event(event.event_id)  # its admitted buyers will hold here
        async with tracked(context, "queuePosition"):
            async for ticket in waiting_room.watch_position(
                room=rt.backends.waiting_room,
                broker=rt.backends.broker,
                tokens=rt.queue_tokens,
                user_id=user_id,
                event_id=event.event_id,
                admit_per_second=event.admit_per_second(rt.settings.queue_admit_per_second),
            ):
                yield QueueTicket.from_ticket(ticket)
