"""GraphQL types of the waitlist (候补)."""

from __future__ import annotations

from datetime import datetime

import strawberry

from boxoffice.models import waitlist as m
from boxoffice.schema.pagination import Connection
from boxoffice.services.waitlist_offers import offer_token

strawberry.enum(m.WaitlistStatus)


@strawberry.type(
    description="A place on a sold-out tier's waitlist. When units come back, the first "
    "entries that fit get an offer: a hold in their name (`offerHoldToken`, ordered like any "
    "hold) until `offerExpiresAt`."
)
class WaitlistEntry:
    id: strawberry.ID
    status: m.WaitlistStatus
    position: int | None = strawberry.field(
        description="Place in the tier's line while WAITING (1: served next)."
    )
    offer_hold_token: str | None = strawberry.field(
        description="While OFFERED, to its owner: the hold token to order with."
    )
    offer_expires_at: datetime | None
    event_id: strawberry.ID
    session_id: strawberry.ID
    tier_id: strawberry.ID
    quantity: int
    priority: int
    joined_at: datetime
    offered_at: datetime | None
    order_id: strawberry.ID | None = strawberry.field(
        description="The order placed with the offer."
    )

    @classmethod
    def from_model(
        cls, entry: m.WaitlistEntry, *, position: int | None = None, owner: bool = True
    ) -> WaitlistEntry:
        return cls(
            id=strawberry.ID(entry.id),
            status=entry.status,
            position=position,
            offer_hold_token=offer_token(entry) if owner else None,
            offer_expires_at=entry.offer_expires_at,
            event_id=strawberry.ID(entry.event_id),
            session_id=strawberry.ID(entry.session_id),
            tier_id=strawberry.ID(entry.tier_id),
            quantity=entry.quantity,
            priority=entry.priority,
            joined_at=entry.joined_at,
            offered_at=entry.offered_at,
            order_id=strawberry.ID(entry.order_id) if entry.order_id else None,
        )


@strawberry.type(name="WaitlistEntryConnection")
class WaitlistEntryConnection(Connection[WaitlistEntry]):
    pass
