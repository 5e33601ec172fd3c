"""Schema extensions: metrics per operation, and the limits that keep queries cheap."""

from __future__ import annotations

import time
from collections.abc import Iterator

from graphql import OperationType
from strawberry.extensions import SchemaExtension


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
