"""GraphQL over HTTP (``POST``/``GET /graphql``) without a per-request framework layer.

Strawberry defines the schema, resolves every field, and still serves WebSocket subscriptions
and GraphiQL. Plain HTTP operations come here instead of strawberry's view: its view and
extension runner cost more per request than executing a small operation (about two thirds of
the CPU of ``{ __typename }``, measured with pyinstrument; see ``bench/RESULTS.md``). Here:

- each distinct document is parsed (with the token limit), validated (depth, aliases,
  introspection in production) and its operations indexed **once**, in an LRU keyed by the
  query text; a repeat costs one dict lookup;
- graphql-core executes it directly with strawberry's execution context class, so resolvers
  see the same ``Info`` as under the view;
- errors go through :func:`boxoffice.schema.errors.map_errors` (the contract's codes), metrics
  are recorded per operation name, and the body is written with orjson.

Transport errors (not ``application/json``: 415, against cross-site forms; bad JSON, no query,
batching, several operations and none named, a mutation over GET, a subscription over HTTP:
400/405) answer a GraphQL-shaped ``BAD_USER_INPUT`` error; operation errors answer 200.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    execute,
    parse,
    specified_rules,
    validate,
)
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.execution import optimized_is_awaitable

from boxoffice.errors import BadUserInput
from boxoffice.response_cache import is_cacheable
from boxoffice.schema.context import Context
from boxoffice.schema.errors import map_errors
from boxoffice.tracing import operation_tracer

if TYPE_CHECKING:
    from graphql import GraphQLSchema

    from boxoffice.config import Settings
    from boxoffice.runtime import Runtime
    from boxoffice.schema import BoxofficeSchema

_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(slots=True, frozen=True)
class Prepared:
    """A parsed and validated document: its operations by name, or the errors to answer."""

    document: DocumentNode | None
    operations: dict[str | None, OperationDefinitionNode]
    errors: list[dict[str, Any]] | None
    cacheable: bool = False  # anonymous answers may come from the response cache

    def operation(self, name: str | None) -> OperationDefinitionNode | None:
        if name:
            return self.operations.get(name)
        if len(self.operations) == 1:
            return next(iter(self.operations.values()))
        return None


class DocumentCache:
    """Parse + validate once per distinct query text (LRU, ``maxsize`` documents)."""

    def __init__(self, schema: BoxofficeSchema, settings: Settings, maxsize: int = 1024) -> None:
        self.graphql_schema: GraphQLSchema = schema._schema
        self.rules = (*specified_rules, *schema.validation_rules)
        self.max_tokens = settings.max_tokens
        self.hide_suggestions = settings.is_prod
        self.maxsize = maxsize
        self._entries: OrderedDict[str, Prepared] = OrderedDict()

    def get(self, query: str) -> Prepared:
        entry = self._entries.get(query)
        if entry is not None:
            self._entries.move_to_end(query)
            return entry
        entry = self._prepare(query)
        self._entries[query] = entry
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return entry

    def _prepare(self, query: str) -> Prepared:
        try:
            document = parse(query, max_tokens=self.max_tokens)
        except GraphQLError as error:
            return Prepared(None, {}, _formatted([error], hide_suggestions=self.hide_suggestions))
        errors = validate(
            self.graphql_schema, document, self.rules, hide_suggestions=self.hide_suggestions
        )
        if errors:
            return Prepared(None, {}, _formatted(errors, hide_suggestions=self.hide_suggestions))
        operations = {
            (node.name.value if node.name else None): node
            for node in document.definitions
            if isinstance(node, OperationDefinitionNode)
        }
        return Prepared(
            document, operations, None, cacheable=is_cacheable(self.graphql_schema, document)
        )


def _formatted(errors: list[GraphQLError], *, hide_suggestions: bool) -> list[dict[str, Any]]:
    """The contract's shape of ``errors`` (codes mapped), as plain dicts."""
    map_errors(errors, hide_suggestions=hide_suggestions)
    return [dict(error.formatted) for error in errors]


class GraphQLHTTP:
    """The ASGI app behind ``/graphql``: HTTP operations here, everything else (WebSocket,
    GraphiQL pages) to strawberry's ``fallback`` view."""

    def __init__(self, schema: BoxofficeSchema, settings: Settings, fallback: ASGIApp) -> None:
        self.schema = schema
        self.graphql_schema = schema._schema
        self.documents = DocumentCache(schema, settings)
        self.fallback = fallback
        self.executor_class = schema.execution_context_class
        self.hide_suggestions = settings.is_prod
        self.tracer = operation_tracer() if settings.otel_enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.fallback(scope, receive, send)
            return
        method = scope["method"]
        if method == "POST":
            if not _is_json(scope):
                # what a browser may post cross-site without a preflight (forms, text/plain)
                # never runs: no cross-site request forgery
                await _refuse(send, 415, "Send operations as application/json.")
                return
            body = await _read_body(receive)
            try:
                payload = orjson.loads(body)
            except orjson.JSONDecodeError:
                await _refuse(send, 400, "Unable to parse request body as JSON.")
                return
        elif method == "GET":
            params = _query_params(scope)
            if "query" not in params:
                await self.fallback(scope, receive, send)  # GraphiQL, or 404 without it
                return
            payload = params
            for key in ("variables", "extensions"):
                if isinstance(params.get(key), str):
                    try:
                        payload[key] = orjson.loads(params[key])
                    except orjson.JSONDecodeError:
                        await _refuse(send, 400, f"'{key}' is not valid JSON.")
                        return
        else:
            await _refuse(send, 405, "Use POST (or GET for queries).")
            return
        if isinstance(payload, list):
            await _refuse(send, 400, "Batching is not enabled: send one operation per request.")
            return
        if not isinstance(payload, dict):
            await _refuse(send, 400, "The body must be a JSON object.")
            return
        await self._run(scope, receive, send, method, payload)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, method: str, payload: dict[str, Any]
    ) -> None:
        query = payload.get("query")
        variables = payload.get("variables")
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not query:
            await _refuse(send, 400, "No GraphQL query found in the request.")
            return
        if variables is not None and not isinstance(variables, dict):
            await _refuse(send, 400, "'variables' must be a JSON object.")
            return
        if operation_name is not None and not isinstance(operation_name, str):
            await _refuse(send, 400, "'operationName' must be a string.")
            return
        rt: Runtime = scope["app"].state.runtime
        metrics = rt.metrics
        label = metrics.operation_label(operation_name)
        started = time.perf_counter()
        prepared = self.documents.get(query)
        if prepared.errors is not None:
            metrics.graphql_requests.labels(label, "invalid").inc()
            for error in prepared.errors:
                code = (error.get("extensions") or {}).get("code", "BAD_USER_INPUT")
                metrics.labelled(metrics.graphql_errors, label, str(code)).inc()
            await _answer(send, 200, {"data": None, "errors": prepared.errors})
            return
        operation = prepared.operation(operation_name)
        if operation is None:
            message = (
                f"Unknown operation named '{operation_name}'."
                if operation_name
                else "Must provide operation name if query contains multiple operations."
            )
            await _refuse(send, 400, message)
            return
        kind = operation.operation
        if kind is OperationType.SUBSCRIPTION:
            await _refuse(
                send, 400, "Subscriptions are served over WebSocket (graphql-transport-ws)."
            )
            return
        if kind is OperationType.MUTATION and method == "GET":
            await _refuse(send, 405, "mutations are not allowed when using GET.")
            return
        context = Context(rt, Request(scope, receive))
        cache_key = None
        if prepared.cacheable and rt.responses.enabled and not _has_authorization(scope):
            cache_key = rt.responses.key(query, operation_name, variables)
            hit = rt.responses.get(cache_key)
            if hit is not None:
                body = await hit.render(rt)
                metrics.operation(label, kind.value, time.perf_counter() - started)
                await _send(send, 200, body)
                return
            context.recording = rt.responses.record()
        if self.tracer is None:
            executed = await self._execute(prepared, context, variables, operation_name, payload)
        else:
            with self.tracer.start_as_current_span(
                f"GraphQL {kind.value}: {label}",
                attributes={"graphql.operation.name": label, "graphql.operation.type": kind.value},
            ):
                executed = await self._execute(
                    prepared, context, variables, operation_name, payload
                )
        response: dict[str, Any] = {"data": executed.data}
        metrics.operation(label, kind.value, time.perf_counter() - started)
        if executed.errors:
            formatted = _formatted(executed.errors, hide_suggestions=self.hide_suggestions)
            for error in formatted:
                code = (error.get("extensions") or {}).get("code", "INTERNAL")
                metrics.labelled(metrics.graphql_errors, label, str(code)).inc()
            response["errors"] = formatted
        elif context.recording is not None and executed.data is not None:
            rt.responses.put(cache_key, executed.data, context.recording)
        await _answer(send, 200, response)

    async def _execute(
        self,
        prepared: Prepared,
        context: Context,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        payload: dict[str, Any],
    ) -> ExecutionResult:
        result = execute(
            self.graphql_schema,
            prepared.document,  # type: ignore[arg-type]
            context_value=context,
            variable_values=variables,
            operation_name=operation_name,
            executor_class=self.executor_class,
            is_awaitable=optimized_is_awaitable,  # type: ignore[arg-type]
            hide_suggestions=self.hide_suggestions,
            operation_extensions=payload.get("extensions"),
        )
        if isinstance(result, ExecutionResult):
            return result
        return await result


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _query_params(scope: Scope) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    return dict(parse_qsl(raw, keep_blank_values=True))


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            essence = value.split(b";", 1)[0].strip().lower()
            return essence == b"application/json"
    return False


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope["headers"])


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    await _send(send, status, orjson.dumps(payload))


async def _send(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _refuse(send: Send, status: int, message: str) -> None:
    error = BadUserInput(message)
    await _answer(
        send, status, {"errors": [{"message": message, "extensions": error.extensions()}]}
    )
