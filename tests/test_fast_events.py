"""Subscription events rendered by ``schema/fast_events.py`` equal graphql-core's execution;
selections it cannot compile take the normal path."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import OperationDefinitionNode, parse, subscribe

from boxoffice.backends.waiting_room import EntryStatus
from boxoffice.schema import build_schema, fast_events
from boxoffice.schema.queue import QueueTicket

SCHEMA = build_schema()

TICKETS = [
    QueueTicket(
        event_id="e1",  # type: ignore[arg-type]
        status=EntryStatus.WAITING,
        position=12,
        ahead=11,
        estimated_wait_seconds=3,
        queue_token=None,
        expires_at=None,
        as_of=datetime(2026, 11, 25, 9, 59, tzinfo=UTC),
    ),
    QueueTicket(
        event_id="e1",  # type: ignore[arg-type]
        status=EntryStatus.ADMITTED,
        position=None,
        ahead=None,
        estimated_wait_seconds=None,
        queue_token="tok",
        expires_at=datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
        as_of=None,
    ),
]


def plan(document: str) -> Any:
    operation = parse(document).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return fast_events._Plan(operation, SCHEMA._schema)


@pytest.mark.parametrize(
    ("document", "compiled"),
    [
        ("subscription { queuePosition(eventId: 1) { status position queueToken } }", True),
        (
            "subscription { q: queuePosition(eventId: 1) { __typename s: status expiresAt } }",
            True,
        ),
        ("subscription { seatAvailability(sessionId: 1) { version tiers { tierId } } }", True),
        ("subscription { seatAvailability(sessionId: 1) { seats { id status } } }", False),
        (
            "subscription { queuePosition(eventId: 1) { ...F } } fragment F on QueueTicket { status }",
            False,
        ),
    ],
)
def test_which_selections_compile(document: str, compiled: bool):
    assert (plan(document).render is not None) is compiled


async def test_compiled_events_equal_graphql_cores_execution():
    document = """subscription { q: queuePosition(eventId: "e1") { __typename eventId status
        position ahead estimatedWaitSeconds queueToken expiresAt } }"""

    async def results(context_class: Any) -> list[Any]:
        field = SCHEMA._schema.subscription_type.fields["queuePosition"]  # type: ignore[union-attr]
        original = field.subscribe

        async def events(*_args: Any, **_kwargs: Any) -> AsyncGenerator[QueueTicket, None]:
            for ticket in TICKETS:
                yield ticket

        field.subscribe = events
        try:
            stream = subscribe(SCHEMA._schema, parse(document), executor_class=context_class)
            if not hasattr(stream, "__aiter__"):
                stream = await stream  # type: ignore[misc]
            return [r.formatted async for r in stream]  # type: ignore[union-attr]
        finally:
            field.subscribe = original

    fast = await results(fast_events.EventExecutionContext)
    normal = await results(fast_events.StrawberryGraphQLCoreExecutionContext)
    assert fast == normal
    assert fast[1]["data"]["q"]["status"] == "ADMITTED"


def test_a_null_where_the_schema_says_non_null_falls_back():
    compiled = plan("subscription { queuePosition(eventId: 1) { status } }").render
    broken = QueueTicket(
        event_id="e",  # type: ignore[arg-type]
        status=None,  # type: ignore[arg-type]
        position=None,
        ahead=None,
        estimated_wait_seconds=None,
        queue_token=None,
        expires_at=None,
        as_of=None,
    )
    with pytest.raises(fast_events._Fallback):
        compiled(broken)
