"""Writing domain events to the outbox, and delivering them to consumers.

``emit`` adds an event to the caller's transaction, so it exists exactly when the change it
describes does. ``dispatch_once`` hands events to one consumer, in ``seq`` order, and records
per event whether the consumer is done, must retry later (exponential backoff), or gave up
(DEAD, visible to operators). Delivery is at least once: a consumer killed between doing its
work and recording it sees the event again, so consumers are idempotent (they deduplicate on
the event id or on unique rows of their own). Each consumer runs under a lease, in one
process at a time. Recording a delivery and moving the cursor touch only the consumer's own
rows and re-read them, so their transactions run again after a deadlock.

The scan starts at the consumer's cursor (everything below is finished). The cursor never
moves past an event younger than ``VISIBILITY_SECONDS``: on PostgreSQL a transaction that
took a lower ``seq`` may still be committing while a later one is already visible.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.ids import new_id
from boxoffice.models.outbox import DeliveryStatus, OutboxCursor, OutboxDelivery, OutboxEvent

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.outbox")

VISIBILITY_SECONDS = 60


def emit(
    session: AsyncSession,
    *,
    topic: str,
    aggregate_type: str,
    aggregate_id: str,
    payload: dict[str, Any],
    tenant_id: str | None = None,
) -> OutboxEvent:
    """Add an event to ``session``'s transaction."""
    event = OutboxEvent(
        event_id=new_id(),
        topic=topic,
        tenant_id=tenant_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        payload=payload,
    )
    session.add(event)
    return event


def exponential_backoff(attempt: int, *, base: float = 2.0, cap: float = 3600.0) -> float:
    """Seconds to wait after the ``attempt``-th failure: 2, 4, 8 … up to ``cap``."""
    return float(min(cap, base**attempt))


@dataclass(frozen=True)
class Consumer:
    name: str
    handle: Callable[[Runtime, OutboxEvent], Awaitable[None]]
    topics: frozenset[str] | None = None  # None: every topic
    max_attempts: int = 12
    backoff: Callable[[int], float] = field(default=exponential_backoff)
    batch_size: int = 50


async def _cursor(session: AsyncSession, consumer: str) -> int:
    row = await session.get(OutboxCursor, consumer)
    return row.seq if row else 0


async def dispatch_once(rt: Runtime, consumer: Consumer, *, now: datetime | None = None) -> int:
    """Deliver one batch; return how many events were handled (successfully or not)."""
    now = now or utcnow()
    async with rt.db.read() as session:
        start = await _cursor(session, consumer.name)
        query = (
            select(OutboxEvent, OutboxDelivery)
            .join(
                OutboxDelivery,
                and_(
                    col(OutboxDelivery.event_seq) == col(OutboxEvent.seq),
                    col(OutboxDelivery.consumer) == consumer.name,
                ),
                isouter=True,
            )
            .where(
                col(OutboxEvent.seq) >= start,
                or_(
                    col(OutboxDelivery.id).is_(None),
                    and_(
                        col(OutboxDelivery.status) == DeliveryStatus.PENDING,
                        col(OutboxDelivery.next_attempt_at) <= now,
                    ),
                ),
            )
            .order_by(col(OutboxEvent.seq))
            .limit(consumer.batch_size)
        )
        if consumer.topics is not None:
            query = query.where(col(OutboxEvent.topic).in_(sorted(consumer.topics)))
        rows = list((await session.exec(query)).all())
    for event, delivery in rows:
        error: str | None = None
        try:
            await consumer.handle(rt, event)
        except Exception as exc:  # a consumer's failure is recorded and retried, never fatal
            log.warning("outbox consumer %s failed on %s: %s", consumer.name, event.event_id, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
        await _record(rt, consumer, event, delivery, error, now)
    await _advance_cursor(rt, consumer, now)
    return len(rows)


async def _record(
    rt: Runtime,
    consumer: Consumer,
    event: OutboxEvent,
    delivery: OutboxDelivery | None,
    error: str | None,
    now: datetime,
) -> None:
    seq = event.seq
    assert seq is not None

    async def record(session: AsyncSession) -> None:
        row = delivery and await session.get(OutboxDelivery, delivery.id)
        if not row:
            row = OutboxDelivery(event_seq=seq, consumer=consumer.name)
        row.attempts += 1
        row.updated_at = now
        if error is None:
            row.status, row.done_at, row.last_error, row.next_attempt_at = (
                DeliveryStatus.DONE,
                now,
                None,
                None,
            )
        elif row.attempts >= consumer.max_attempts:
            row.status, row.last_error = DeliveryStatus.DEAD, error
            log.error("outbox consumer %s gave up on %s", consumer.name, event.event_id)
        else:
            row.status, row.last_error = DeliveryStatus.PENDING, error
            row.next_attempt_at = now + timedelta(seconds=consumer.backoff(row.attempts))
        session.add(row)

    await rt.db.write_retrying(record, what=f"record {consumer.name} of {event.event_id}")


async def _advance_cursor(rt: Runtime, consumer: Consumer, now: datetime) -> None:
    """Move the cursor to the first event that is not finished (or too young to be sure)."""
    horizon = now - timedelta(seconds=VISIBILITY_SECONDS)

    async def advance(session: AsyncSession) -> None:
        start = await _cursor(session, consumer.name)
        finished = select(OutboxDelivery.event_seq).where(
            OutboxDelivery.consumer == consumer.name,
            col(OutboxDelivery.status).in_((DeliveryStatus.DONE, DeliveryStatus.DEAD)),
        )
        query = select(OutboxEvent.seq, OutboxEvent.created_at).where(
            col(OutboxEvent.seq) >= start, col(OutboxEvent.seq).not_in(finished)
        )
        if consumer.topics is not None:
            query = query.where(col(OutboxEvent.topic).in_(sorted(consumer.topics)))
        first = (await session.exec(query.order_by(col(OutboxEvent.seq)).limit(1))).first()
        newest_settled = (
            await session.exec(
                select(OutboxEvent.seq)
                .where(col(OutboxEvent.created_at) < horizon)
                .order_by(col(OutboxEvent.seq).desc())
                .limit(1)
            )
        ).first()
        settled_end = (newest_settled + 1) if newest_settled is not None else start
        target = settled_end if first is None else (first[0] or start)
        # never past the settled events: one still committing sorts above all of them, and
        # may sort below a visible young event (even an unfinished one, the ``first`` above)
        target = min(target, settled_end)
        # never past a young event: it may have neighbours still committing below it
        young = (
            await session.exec(
                select(OutboxEvent.seq)
                .where(col(OutboxEvent.seq) >= start, col(OutboxEvent.created_at) >= horizon)
                .order_by(col(OutboxEvent.seq))
                .limit(1)
            )
        ).first()
        if young is not None:
            target = min(target, young)
        if target > start:
            row = await session.get(OutboxCursor, consumer.name) or OutboxCursor(
                consumer=consumer.name
            )
            row.seq, row.updated_at = target, now
            session.add(row)

    await rt.db.write_retrying(advance, what=f"advance the {consumer.name} cursor")


async def retry_dead(rt: Runtime, consumer: str, event_seq: int) -> bool:
    """Operators: give a DEAD delivery another round."""
    async with rt.db.write() as session:
        return await reschedule_dead(session, consumer, event_seq)


async def reschedule_dead(session: AsyncSession, consumer: str, event_seq: int) -> bool:
    """``retry_dead`` inside the caller's transaction (e.g. beside an audit entry); False when
    the consumer has no DEAD delivery of that event."""
    row = (
        await session.exec(
            select(OutboxDelivery).where(
                OutboxDelivery.consumer == consumer,
                OutboxDelivery.event_seq == event_seq,
                OutboxDelivery.status == DeliveryStatus.DEAD,
            )
        )
    ).first()
    if row is None:
        return False
    row.status, row.attempts, row.next_attempt_at = DeliveryStatus.PENDING, 0, utcnow()
    session.add(row)
    cursor = await session.get(OutboxCursor, consumer)
    if cursor is not None and cursor.seq > event_seq:
        cursor.seq = event_seq
        session.add(cursor)
    return True


async def oldest_pending(rt: Runtime, consumer: Consumer) -> datetime | None:
    """When the oldest event this consumer has not finished was written (None: caught up)."""
    async with rt.db.read() as session:
        start = await _cursor(session, consumer.name)
        finished = select(OutboxDelivery.event_seq).where(
            OutboxDelivery.consumer == consumer.name,
            col(OutboxDelivery.status).in_((DeliveryStatus.DONE, DeliveryStatus.DEAD)),
        )
        query = select(OutboxEvent.created_at).where(
            col(OutboxEvent.seq) >= start, col(OutboxEvent.seq).not_in(finished)
        )
        if consumer.topics is not None:
            query = query.where(col(OutboxEvent.topic).in_(sorted(consumer.topics)))
        return (await session.exec(query.order_by(col(OutboxEvent.seq)).limit(1))).first()
