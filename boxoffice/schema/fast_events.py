"""Subscription events without a full graphql-core execution per subscriber.

graphql-core executes a subscription's selection set again for every event of every
subscriber: with thousands of queue screens or seat maps open, that execution was about half
of the server's CPU per update (py-spy on ``bench.queue_fanout``). Two shortcuts, both exact:

- **Compiled selections.** When a subscription selects only plain fields (strawberry fields
  without resolvers, arguments, directives or fragments) of object types, leaves and lists,
  the selection is compiled once per document into a function from the event to its data,
  with graphql-core's own output coercion. Anything else, or a null in a non-null place, takes
  the normal execution.
- **Shared results.** Events that are the same object for every subscriber and whose answer
  does not depend on who asks (``SHARED``: the seat map feed) are executed once per document,
  variables and event, and the result is reused by every other subscriber of that document.

The compiled selections also serve queries and mutations: an object a resolver returned whose
sub-selection compiles (e.g. ``createHold { token expiresAt }``) is rendered by the compiled
function instead of graphql-core's completion of each sub-field (about 15 us per hold). A
value the function cannot render (a null where the schema says non-null, a scalar that does
not serialize) is completed the normal way, which reports it as graphql-core does; plain
fields have no resolver of their own, so rendering twice has no effect.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLEnumType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.pyutils.gather_with_cancel import gather_with_cancel
from graphql.type.definition import GraphQLResolveInfoHelpers
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# Root subscription fields whose per-event answer depends only on the event and the variables.
SHARED = frozenset({"seatAvailability"})

Render = Callable[[Any], Any]


def _gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
    """``Executor.gather_async_work``, which uses nothing of the executor."""
    return gather_with_cancel(*values)


_ORPHANS: set[asyncio.Future[Any]] = set()


def _tracker(executor: weakref.ref[Any]) -> Callable[[Sequence[Any]], None]:
    """``Executor.track_async_work`` through a weak reference. A resolver's task that
    tracks work after its execution ended (the executor gone) has it settled here."""

    def track(values: Sequence[Any]) -> None:
        alive = executor()
        if alive is not None:
            alive.track_async_work(values)
            return
        pending = [value for value in values if inspect.isawaitable(value)]
        if pending:
            settled = asyncio.gather(*pending, return_exceptions=True)
            _ORPHANS.add(settled)
            settled.add_done_callback(_ORPHANS.discard)

    return track


class _Fallback(Exception):
    """This event needs the normal execution (e.g. a null where the schema says non-null)."""


class _Plan:
    __slots__ = ("operation", "render", "response_key", "results", "shared")

    def __init__(self, operation: OperationDefinitionNode, schema: Any) -> None:
        self.operation = operation
        self.render: Render | None = None
        self.response_key = ""
        self.shared = False
        self.results: OrderedDict[tuple[int, bytes], tuple[Any, Any]] = OrderedDict()
        selections = operation.selection_set.selections
        if len(selections) != 1 or not isinstance(selections[0], FieldNode):
            return
        root = selections[0]
        if root.directives or schema.subscription_type is None:
            return
        field = schema.subscription_type.fields.get(root.name.value)
        if field is None:
            return
        self.response_key = root.alias.value if root.alias else root.name.value
        self.shared = root.name.value in SHARED
        self.render = _compile(field.type, root.selection_set)


def _compile(type_: Any, selection_set: SelectionSetNode | None) -> Render | None:
    """A function from a resolved value of ``type_`` to its response data, or None when the
    selection needs graphql-core (resolvers, arguments, fragments, abstract types)."""
    if isinstance(type_, GraphQLNonNull):
        inner = _compile(type_.of_type, selection_set)
        if inner is None:
            return None

        def non_null(value: Any) -> Any:
            if value is None:
                raise _Fallback
            return inner(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item = _compile(type_.of_type, selection_set)
        if item is None:
            return None
        return lambda value: None if value is None else [item(v) for v in value]
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        coerce = type_.coerce_output_value
        return lambda value: None if value is None else coerce(value)
    if not isinstance(type_, GraphQLObjectType) or selection_set is None:
        return None
    fields: list[tuple[str, Callable[..., Any], Render]] = []
    for selection in selection_set.selections:
        if not isinstance(selection, FieldNode) or selection.directives or selection.arguments:
            return None
        name = selection.name.value
        key = selection.alias.value if selection.alias else name
        if name == "__typename":
            fields.append((key, _constant(type_.name), _same))
            continue
        field = type_.fields.get(name)
        if field is None or not getattr(field.resolve, "_is_default", False):
            return None  # a resolver (it may want info, arguments or the context)
        render = _compile(field.type, selection.selection_set)
        if render is None:
            return None
        fields.append((key, field.resolve, render))

    def render_object(value: Any) -> Any:
        if value is None:
            return None
        return {key: render(resolve(value, None)) for key, resolve, render in fields}

    return render_object


def _constant(value: Any) -> Callable[..., Any]:
    return lambda *_: value


def _same(value: Any) -> Any:
    return value


_PLANS: dict[int, _Plan] = {}
_MAX_PLANS = 512
_MAX_SHARED = 64


def _plan_for(operation: OperationDefinitionNode, schema: Any) -> _Plan:
    plan = _PLANS.get(id(operation))
    if plan is None or plan.operation is not operation:  # ids are reused once a node is gone
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        plan = _PLANS[id(operation)] = _Plan(operation, schema)
    return plan


_OBJECT_PLANS: dict[tuple[int, int], tuple[FieldNode, GraphQLObjectType, Render | None]] = {}


def _object_render(type_: GraphQLObjectType, node: FieldNode) -> Render | None:
    key = (id(type_), id(node))
    found = _OBJECT_PLANS.get(key)
    if found is None or found[0] is not node or found[1] is not type_:  # ids are reused
        if len(_OBJECT_PLANS) >= _MAX_PLANS:
            _OBJECT_PLANS.clear()
        found = _OBJECT_PLANS[key] = (node, type_, _compile(type_, node.selection_set))
    return found[2]


class EventExecutionContext(StrawberryGraphQLCoreExecutionContext):
    """strawberry's execution context, with the two shortcuts for subscription events, and
    compiled selections for the objects resolvers return.

    It also holds its resolvers' ``async_helpers`` without a reference cycle: graphql-core
    binds them to the executor (executor → helpers → bound method → executor), and that
    cycle kept each request's whole graph (the context, the Starlette request, the viewer,
    the variables: ~90 objects) alive until the cyclic collector found it. At an on-sale
    that garbage was what filled the young generation, and its collections stopped the
    loop for 15-90 ms (``boxoffice.gc_tuning``); freed by reference counting at the end of
    the request, it never reaches the collector.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=_gather, track=_tracker(weakref.ref(self))
        )

    def complete_object_value(
        self,
        return_type: GraphQLObjectType,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if (
            len(field_details_list) == 1
            and return_type.is_type_of is None
            and self.middleware_manager is None
        ):
            details = field_details_list[0]
            if details.defer_usage is None and details.fragment_variable_values is None:
                render = _object_render(return_type, details.node)
                if render is not None:
                    try:
                        return render(result)
                    except Exception:  # noqa: S110 - completed below, which reports it
                        pass
        return super().complete_object_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        operation = self.operation
        if operation.operation is not OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        plan = _plan_for(operation, self.schema)
        payload = self.root_value
        key: tuple[int, bytes] | None = None
        if plan.shared:
            key = (id(payload), _variables_key(self.variable_values.coerced))
            found = plan.results.get(key)
            if found is not None and found[0] is payload:
                return found[1]
        result: Any = None
        if plan.render is not None:
            try:
                result = ExecutionResult(data={plan.response_key: plan.render(payload)})
            except _Fallback:
                result = None
        if result is None:
            result = super().execute_operation(serially)
            if key is not None and self.is_awaitable(result):
                return _remember_later(plan, key, payload, result)
        if key is not None and isinstance(result, ExecutionResult) and not result.errors:
            _remember(plan, key, payload, result)
        return result


async def _remember_later(plan: _Plan, key: tuple[int, bytes], payload: Any, pending: Any) -> Any:
    result = await pending
    if isinstance(result, ExecutionResult) and not result.errors:
        _remember(plan, key, payload, result)
    return result


def _remember(plan: _Plan, key: tuple[int, bytes], payload: Any, result: ExecutionResult) -> None:
    # the payload is kept with its result, so its id cannot be reused while the entry lives
    plan.results[key] = (payload, result)
    if len(plan.results) > _MAX_SHARED:
        plan.results.popitem(last=False)


def _variables_key(variables: dict[str, Any] | None) -> bytes:
    return orjson.dumps(variables or {}, option=orjson.OPT_SORT_KEYS, default=str)
