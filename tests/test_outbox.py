"""The outbox: events written with their change, delivered at least once per consumer, with
retries, dead letters and a cursor that never skips a late commit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.models.outbox import DeliveryStatus, OutboxCursor, OutboxDelivery, OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services.outbox import Consumer, dispatch_once, emit, retry_dead


async def write_events(rt: Runtime, *topics: str) -> list[OutboxEvent]:
    async with rt.db.write() as session:
        events = [
            emit(
                session,
                topic=t,
                aggregate_type="Order",
                aggregate_id=f"o{i}",
                payload={"i": i},
                tenant_id="t1",
            )
            for i, t in enumerate(topics)
        ]
    return events


async def test_events_roll_back_with_their_transaction(rt: Runtime):
    try:
        async with rt.db.write() as session:
            emit(session, topic="order.paid", aggregate_type="Order", aggregate_id="o1", payload={})
            raise RuntimeError("the change failed")
    except RuntimeError:
        pass
    async with rt.db.read() as session:
        assert (await session.exec(select(OutboxEvent))).all() == []


async def test_consumer_gets_its_topics_in_order_once(rt: Runtime):
    # given events of two topics
    await write_events(rt, "order.paid", "order.created", "order.paid", "order.paid")
    seen: list[int] = []

    async def handle(_rt: Runtime, event: OutboxEvent) -> None:
        seen.append(event.payload["i"])

    consumer = Consumer("tickets", handle, topics=frozenset({"order.paid"}))
    # when the dispatcher runs twice
    assert await dispatch_once(rt, consumer) == 3
    assert await dispatch_once(rt, consumer) == 0
    # then each event of the topic was handled once, in order
    assert seen == [0, 2, 3]


async def test_failures_are_retried_with_backoff_then_dead(rt: Runtime):
    await write_events(rt, "order.paid")
    calls = 0

    async def flaky(_rt: Runtime, _event: OutboxEvent) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("provider down")

    consumer = Consumer("sms", flaky, max_attempts=3, backoff=lambda n: 10.0 * n)
    now = utcnow()
    assert await dispatch_once(rt, consumer, now=now) == 1
    assert await dispatch_once(rt, consumer, now=now + timedelta(seconds=5)) == 0  # backing off
    assert await dispatch_once(rt, consumer, now=now + timedelta(seconds=11)) == 1
    assert await dispatch_once(rt, consumer, now=now + timedelta(seconds=40)) == 1
    assert calls == 3
    async with rt.db.read() as session:
        row = (await session.exec(select(OutboxDelivery))).one()
    assert row.status == DeliveryStatus.DEAD
    assert row.last_error is not None
    assert "provider down" in row.last_error
    assert await dispatch_once(rt, consumer, now=now + timedelta(hours=9)) == 0
    # an operator retries it
    assert await retry_dead(rt, "sms", row.event_seq)
    assert await dispatch_once(rt, consumer, now=now + timedelta(hours=9)) == 1
    assert calls == 4


async def test_cursor_waits_for_young_events(rt: Runtime):
    events = await write_events(rt, "a", "a", "a")

    async def ok(_rt: Runtime, _event: OutboxEvent) -> None:
        return None

    consumer = Consumer("c", ok)
    await dispatch_once(rt, consumer)
    async with rt.db.read() as session:
        cursor = await session.get(OutboxCursor, "c")
    # the events are seconds old: the cursor stays before them
    assert cursor is None or cursor.seq <= events[0].seq
    # a minute later it moves past everything finished
    await dispatch_once(rt, consumer, now=utcnow() + timedelta(minutes=2))
    async with rt.db.read() as session:
        cursor = await session.get(OutboxCursor, "c")
    assert cursor is not None
    assert cursor.seq == (events[-1].seq or 0) + 1


async def test_a_late_commit_below_a_failing_young_event_is_not_skipped(rt: Runtime):
    if rt.db.is_sqlite:
        pytest.skip("SQLite serialises writers: no transaction can commit past another")
    seen: list[str] = []

    async def handle(_rt: Runtime, event: OutboxEvent) -> None:
        if event.aggregate_id == "fails":
            raise ConnectionError("down")
        seen.append(event.aggregate_id)

    consumer = Consumer("late", handle, backoff=lambda n: 1.0)
    now = utcnow()
    # given a transaction holding a lower seq while a higher one commits, and fails to deliver
    async with rt.db.write() as slow:
        emit(slow, topic="t", aggregate_type="Order", aggregate_id="late", payload={})
        await slow.flush()
        async with rt.db.write() as session:
            emit(session, topic="t", aggregate_type="Order", aggregate_id="fails", payload={})
        await dispatch_once(rt, consumer, now=now)
    # when the slow transaction has committed and the dispatcher runs again
    await dispatch_once(rt, consumer, now=now + timedelta(seconds=5))
    # then the late event is delivered all the same
    assert seen == ["late"]
