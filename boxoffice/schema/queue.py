"""GraphQL types of the waiting room and its blacklist."""

from __future__ import annotations

from datetime import UTC, datetime

import strawberry

from boxoffice.backends.waiting_room import EntryStatus
from boxoffice.models.blacklist import BlacklistEntry as BlacklistEntryModel
from boxoffice.models.blacklist import BlacklistKind
from boxoffice.services.waiting_room import QueueTicket as Ticket

strawberry.enum(
    EntryStatus,
    name="QueueTicketStatus",
    description="WAITING in line, ADMITTED (may hold seats with a queue token), or EXPIRED "
    "(the admission window ended unused).",
)
strawberry.enum(BlacklistKind, description="What a blacklist entry names.")


@strawberry.type(
    description="Your place in an event's waiting room. `position` 1 is next in; `position`, "
    "`ahead` and `estimatedWaitSeconds` are null before the sale opens (the order of early "
    "arrivals is drawn then) and are upper bounds that only ever go down."
)
class QueueTicket:
    event_id: strawberry.ID
    status: EntryStatus
    position: int | None
    ahead: int | None
    estimated_wait_seconds: int | None = strawberry.field(
        description="Seconds until admission at the event's current rate (an upper bound)."
    )
    queue_token: str | None = strawberry.field(
        description="Only when ADMITTED: pass it to `createHold` for this event's sessions "
        "(once; ask again for a new one while admitted)."
    )
    expires_at: datetime | None = strawberry.field(
        description="ADMITTED: when `queueToken` expires. EXPIRED: when the admission ended."
    )
    as_of: datetime | None = strawberry.field(
        description="When the line was as this ticket says (server clock): the admission tick "
        "it reflects, or the read it came from. Shows clients how fresh a position is."
    )

    @classmethod
    def from_ticket(cls, ticket: Ticket) -> QueueTicket:
        return cls(
            event_id=strawberry.ID(ticket.event_id),
            status=ticket.status,
            position=ticket.position,
            ahead=ticket.ahead,
            estimated_wait_seconds=ticket.estimated_wait_seconds,
            queue_token=ticket.queue_token,
            expires_at=ticket.expires_at,
            as_of=datetime.fromtimestamp(ticket.as_of, UTC) if ticket.as_of else None,
        )


@strawberry.type(description="A user, device id or IP address the waiting room refuses.")
class BlacklistEntry:
    id: strawberry.ID
    kind: BlacklistKind
    value: str
    reason: str | None
    created_by: strawberry.ID | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: BlacklistEntryModel) -> BlacklistEntry:
        return cls(
            id=strawberry.ID(row.id),
            kind=BlacklistKind(row.kind),
            value=row.value,
            reason=row.reason,
            created_by=strawberry.ID(row.created_by) if row.created_by else None,
            created_at=row.created_at,
        )


@strawberry.input
class AddToBlacklistInput:
    kind: BlacklistKind
    value: str = strawberry.field(
        description="A user id, a device id as sent to `joinQueue`, or an IPv4/IPv6 address."
    )
    reason: str | None = None
