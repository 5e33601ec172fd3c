from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from boxoffice.schema.context import Info
from boxoffice.schema.inventory import AvailabilityUpdate
from boxoffice.subscriptions import tracked


@strawberry.type
class InventorySubscription:
    @strawberry.subscription(
        description="A session's availability, live: a snapshot first, then changes (merged, "
        "at most ~10 messages a second). Public: no token needed."
    )
    async def seat_availability(
        self, info: Info, session_id: strawberry.ID
    ) -> AsyncGenerator[AvailabilityUpdate, None]:
        context = info.context
        await context.rt.session_rules.get(session_id)  # NOT_FOUND for unknown sessions
        async with (
            tracked(context, "seatAvailability"),
            context.rt.availability_feeds.subscribe(session_id) as updates,
        ):
            async for update in updates:
                yield AvailabilityUpdate.from_update(update)
