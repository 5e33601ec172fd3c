"""GraphQL types of the outbox, for operators."""

from __future__ import annotations

from datetime import datetime

import strawberry

from boxoffice.services.dead_letters import DeadLetter as DeadLetterRow


@strawberry.type(description="An outbox event a consumer gave up on after its retries.")
class DeadLetter:
    consumer: str = strawberry.field(description="e.g. `notifications`, `webhooks`.")
    event_id: strawberry.ID
    topic: str
    tenant_id: strawberry.ID | None
    resource_type: str
    resource_id: str
    attempts: int
    last_error: str | None
    failed_at: datetime
    event_created_at: datetime

    @classmethod
    def from_row(cls, row: DeadLetterRow) -> DeadLetter:
        return cls(
            consumer=row.consumer,
            event_id=strawberry.ID(row.event_id),
            topic=row.topic,
            tenant_id=strawberry.ID(row.tenant_id) if row.tenant_id else None,
            resource_type=row.aggregate_type,
            resource_id=row.aggregate_id,
            attempts=row.attempts,
            last_error=row.last_error,
            failed_at=row.failed_at,
            event_created_at=row.event_created_at,
        )
