"""Schema extensions: metrics per operation, and the limits that keep queries cheap."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from graphql import GraphQLError, OperationDefinitionNode, OperationType
from strawberry.extensions import ParserCache, SchemaExtension


class OperationMetrics(SchemaExtension):
    """Counts, latency and error codes per operation name (HTTP and WebSocket alike)."""

    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        ctx = self.execution_context
        context = ctx.context
        rt = getattr(context, "rt", None)
        if rt is None:
            return
        metrics = rt.metrics
        name = metrics.operation_label(ctx.operation_name)
        try:
            kind = ctx.operation_type.value if ctx.operation_type else "unknown"
        except RuntimeError:
            kind = "invalid"
        if kind == OperationType.SUBSCRIPTION.value:
            metrics.graphql_requests.labels(name, kind).inc()
            return
        metrics.graphql_requests.labels(name, kind).inc()
        metrics.graphql_latency.labels(name).observe(time.perf_counter() - started)
        result = ctx.result
        errors = (getattr(result, "errors", None) or []) if result is not None else []
        errors = errors or ctx.pre_execution_errors or []
        for error in errors:
            code = (error.extensions or {}).get("code", "INTERNAL")
            metrics.graphql_errors.labels(name, str(code)).inc()


class OneOperationPerRequest(SchemaExtension):
    """A document of several operations must name the one to run, as the spec says (strawberry
    would otherwise quietly run the first one). Placed after the validation cache, so its
    error replaces the (cached) validation result for that request only."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        named = getattr(ctx, "_provided_operation_name", None)
        document = ctx.graphql_document
        if named is None and document is not None:
            operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
            if operations > 1:
                ctx.pre_execution_errors = [
                    GraphQLError(
                        "Must provide operation name if query contains multiple operations."
                    )
                ]
        yield


class ReportingParserCache(ParserCache):
    """strawberry's ParserCache parses outside strawberry's error handling, so over WebSocket a
    syntax error (or a query past the token limit) escaped as a crash of the operation task:
    the client got a bare ``complete`` instead of the protocol's 4400 close. Here a document
    that does not parse is left to strawberry, which parses it again inside its handling and
    reports the error on every transport. Valid documents still come from the cache."""

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        with contextlib.suppress(Exception):  # reported by strawberry's own parse just after
            ctx.graphql_document = self.cached_parse_document(ctx.query, **ctx.parse_options)
        yield
