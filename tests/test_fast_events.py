"""Subscription events rendered by ``schema/fast_events.py`` equal graphql-core's execution;
selections it cannot compile take the normal path."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from graphql import ExecutionResult, OperationDefinitionNode, execute, parse, subscribe
from strawberry.execution import optimized_is_awaitable

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


@strawberry.type
class CompiledLeaf:
    name: str
    when: datetime | None = None


@strawberry.type
class CompiledThing:
    id: strawberry.ID
    count: int
    leaves: list[CompiledLeaf]
    must: str = "x"

    @strawberry.field
    def computed(self) -> str:
        return f"c{self.count}"


def _things() -> list[Any]:
    broken = CompiledThing(id=strawberry.ID("3"), count=3, leaves=[])
    broken.must = None  # type: ignore[assignment]
    unserializable = CompiledThing(id=strawberry.ID("4"), count="four", leaves=[])  # type: ignore[arg-type]
    return [
        CompiledThing(
            id=strawberry.ID("1"),
            count=1,
            leaves=[
                CompiledLeaf(name="a", when=datetime(2026, 11, 25, 10, 0, tzinfo=UTC)),
                CompiledLeaf(name="b"),
            ],
        ),
        broken,
        unserializable,
    ]


@strawberry.type
class _Query:
    @strawberry.field
    async def thing(self, n: int) -> CompiledThing:
        return _things()[n]

    @strawberry.field
    def maybe(self, n: int) -> CompiledThing | None:
        return _things()[n]


_SMALL = strawberry.Schema(query=_Query, execution_context_class=fast_events.EventExecutionContext)


async def _execute(document: str) -> Any:
    """As ``graphql_http`` executes an operation (graphql-core, no middleware)."""
    result = execute(
        _SMALL._schema,
        parse(document),
        executor_class=_SMALL.execution_context_class,
        is_awaitable=optimized_is_awaitable,
    )
    return await result if not isinstance(result, ExecutionResult) else result


@pytest.mark.parametrize(
    ("document", "compiled", "ok"),
    [
        ("{ thing(n: 0) { id count must leaves { name when } __typename } }", True, True),
        ("{ a: thing(n: 0) { i: id l: leaves { name } } b: maybe(n: 0) { count } }", True, True),
        ("{ thing(n: 0) { id computed } }", False, True),  # a resolver: the normal completion
        ("{ thing(n: 1) { id must } }", True, False),  # a null in a non-null place
        ("{ maybe(n: 1) { id must } }", True, False),
        ("{ thing(n: 2) { id count } }", True, False),  # a value that does not serialize
        ("{ thing(n: 0) { ... on CompiledThing { id } } }", False, True),
    ],
)
async def test_objects_resolvers_return_render_as_graphql_core_completes_them(
    document: str, compiled: bool, ok: bool, monkeypatch: pytest.MonkeyPatch
):
    renders: list[bool] = []
    plan = fast_events._object_render

    def spy(*args: Any) -> Any:
        found = plan(*args)
        renders.append(found is not None)
        return found

    monkeypatch.setattr(fast_events, "_object_render", spy)
    fast = await _execute(document)
    assert any(renders) is compiled
    monkeypatch.setattr(fast_events, "_object_render", lambda *_: None)
    normal = await _execute(document)
    assert (not normal.errors) is ok
    assert fast.data == normal.data
    assert [(e.message, e.path) for e in fast.errors or []] == [
        (e.message, e.path) for e in normal.errors or []
    ]


class _Held:
    """A context value the test can take a weak reference to."""


async def test_an_execution_leaves_no_reference_cycle_behind():
    # given the collector off, so only reference counting frees anything
    context = _Held()
    gone = weakref.ref(context)
    gc.collect()
    gc.disable()
    try:
        # when an operation with an async resolver (which tracks async work) executes
        result = execute(
            _SMALL._schema,
            parse("{ thing(n: 0) { id computed } }"),
            context_value=context,
            executor_class=_SMALL.execution_context_class,
            is_awaitable=optimized_is_awaitable,
        )
        result = await result if not isinstance(result, ExecutionResult) else result
        assert result.errors is None
        del context, result
        # then the executor, and the context it held, were freed at once: no cycle kept the
        # request's graph for the cyclic collector (graphql-core binds the resolvers'
        # async helpers to the executor)
        assert gone() is None
    finally:
        gc.enable()


async def test_helpers_still_settle_work_tracked_after_the_execution_ended():
    # given a tracker whose executor is gone
    class Gone:
        pass

    track = fast_events._tracker(weakref.ref(Gone()))
    ran: list[int] = []

    async def work() -> None:
        ran.append(1)
        raise RuntimeError("observed, not raised")

    # when a late resolver task tracks work, then it still runs (and its error is kept)
    track([work(), "not awaitable"])
    for _ in range(10):
        if not fast_events._ORPHANS:
            break
        await asyncio.sleep(0)
    assert ran == [1]
    assert not fast_events._ORPHANS  # settled, and let go of
