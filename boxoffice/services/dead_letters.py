"""Operators: outbox deliveries a consumer gave up on (DEAD), and retrying one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, func, select

from boxoffice.db import Database
from boxoffice.errors import NotFound
from boxoffice.models.identity import Role
from boxoffice.models.outbox import DeliveryStatus, OutboxDelivery, OutboxEvent
from boxoffice.services import audit
from boxoffice.services.outbox import reschedule_dead
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer


@dataclass(frozen=True)
class DeadLetter:
    delivery_id: int
    consumer: str
    event_id: str
    topic: str
    tenant_id: str | None
    aggregate_type: str
    aggregate_id: str
    attempts: int
    last_error: str | None
    failed_at: datetime
    event_created_at: datetime


PAGE_KEYS: list[SortKey[DeadLetter]] = [
    SortKey(col(OutboxDelivery.updated_at), lambda d: d.failed_at, "datetime", descending=True),
    SortKey(col(OutboxDelivery.id), lambda d: d.delivery_id, "int", descending=True),
]


def _conditions(consumer: str | None) -> list[Any]:
    conditions: list[Any] = [col(OutboxDelivery.status) == DeliveryStatus.DEAD]
    if consumer:
        conditions.append(col(OutboxDelivery.consumer) == consumer)
    return conditions


async def list_dead_letters(
    *,
    db: Database,
    viewer: Viewer,
    consumer: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[DeadLetter]:
    """OPERATOR: dead deliveries, the most recently failed first."""
    viewer.require_role(Role.OPERATOR)
    size = page_size(first)
    query = apply_keyset(
        select(OutboxDelivery, OutboxEvent)
        .join(OutboxEvent, col(OutboxEvent.seq) == col(OutboxDelivery.event_seq))
        .where(*_conditions(consumer)),
        PAGE_KEYS,
        after=after,
    )
    async with db.read() as session:
        rows = (await session.exec(query.limit(size + 1))).all()
    letters = [
        DeadLetter(
            delivery_id=delivery.id or 0,
            consumer=delivery.consumer,
            event_id=event.event_id,
            topic=event.topic,
            tenant_id=event.tenant_id,
            aggregate_type=event.aggregate_type,
            aggregate_id=event.aggregate_id,
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            failed_at=delivery.updated_at,
            event_created_at=event.created_at,
        )
        for delivery, event in rows
    ]
    return Page.from_rows(letters, PAGE_KEYS, size)


async def count_dead_letters(*, db: Database, viewer: Viewer, consumer: str | None = None) -> int:
    viewer.require_role(Role.OPERATOR)
    query = select(func.count()).select_from(OutboxDelivery).where(*_conditions(consumer))
    async with db.read() as session:
        return int((await session.exec(query)).one())


async def retry_dead_letter(*, db: Database, viewer: Viewer, consumer: str, event_id: str) -> bool:
    """OPERATOR: deliver a DEAD event to ``consumer`` again (from a fresh attempt count).
    NOT_FOUND when that consumer has no dead delivery of the event."""
    viewer.require_role(Role.OPERATOR)
    async with db.write() as session:
        event = (
            await session.exec(select(OutboxEvent).where(OutboxEvent.event_id == event_id))
        ).first()
        if event is None or event.seq is None:
            raise NotFound("No such event.")
        if not await reschedule_dead(session, consumer, event.seq):
            raise NotFound("This consumer has no dead delivery of the event.")
        audit.record(
            session,
            viewer=viewer,
            action="outbox.retry_dead",
            target_type="OutboxEvent",
            target_id=event.event_id,
            tenant_id=event.tenant_id,
            after={"consumer": consumer, "topic": event.topic},
        )
    return True
