"""Root fields for operators watching the outbox."""

from __future__ import annotations

import strawberry

from boxoffice.schema.context import Info
from boxoffice.schema.outbox import DeadLetter
from boxoffice.schema.pagination import Connection
from boxoffice.services import dead_letters


@strawberry.type
class OutboxQuery:
    @strawberry.field(
        description="OPERATOR: outbox deliveries given up after their retries, latest first."
    )
    async def dead_letters(
        self,
        info: Info,
        consumer: str | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[DeadLetter]:
        db = info.context.rt.db
        viewer = await info.context.viewer()
        page = await dead_letters.list_dead_letters(
            db=db, viewer=viewer, consumer=consumer, first=first, after=after
        )
        return Connection.of(
            page,
            DeadLetter.from_row,
            after=after,
            total=lambda: dead_letters.count_dead_letters(db=db, viewer=viewer, consumer=consumer),
        )


@strawberry.type
class OutboxMutation:
    @strawberry.mutation(description="OPERATOR: give a dead delivery another round of retries.")
    async def retry_dead_letter(self, info: Info, consumer: str, event_id: strawberry.ID) -> bool:
        return await dead_letters.retry_dead_letter(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            consumer=consumer,
            event_id=str(event_id),
        )
