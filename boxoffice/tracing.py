"""OpenTelemetry traces (optional, off by default): spans for GraphQL operations (one per HTTP
operation; strawberry's extension for WebSocket ones), SQL (SQLAlchemy) and Redis.
``BOXOFFICE_OTEL_ENABLED=true`` and ``pip install 'boxoffice[otel]'``;
``BOXOFFICE_OTEL_EXPORTER=otlp`` (with ``BOXOFFICE_OTEL_ENDPOINT``) or ``console``."""

from __future__ import annotations

from typing import Any

from boxoffice.backends import fast_redis
from boxoffice.config import Settings
from boxoffice.db import Database
from boxoffice.errors import ConfigurationError

_configured: Any = None


def configure_tracing(settings: Settings, db: Database, *, exporter: Any = None) -> Any:
    """Install a tracer provider for this process (once) and instrument SQL and Redis.
    Returns the provider, or None when tracing is off. ``exporter`` overrides the configured
    one (tests pass an in-memory exporter)."""
    global _configured
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.redis import RedisInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(
            "BOXOFFICE_OTEL_ENABLED needs: pip install 'boxoffice[otel]'"
        ) from exc
    if _configured is None:
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name})
        )
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.otel_exporter == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError as exc:
                raise ConfigurationError(
                    "the OTLP exporter needs: pip install opentelemetry-exporter-otlp-proto-http"
                ) from exc
            provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otel_endpoint))
            )
        trace.set_tracer_provider(provider)
        RedisInstrumentor().instrument(tracer_provider=provider)
        fast_redis.trace_commands(provider)
        _configured = provider
    _trace_engines(db, _configured)
    return _configured


def _trace_engines(db: Database, provider: Any) -> None:
    """Attach SQL spans to this database's engines (every runtime makes its own engines, so
    the instrumentor's one-time global patch would miss them)."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import get_meter
    from opentelemetry.trace import get_tracer

    tracer = get_tracer("boxoffice.sql", tracer_provider=provider)
    usage = get_meter("boxoffice.sql").create_up_down_counter("db.client.connections.usage")
    for engine in {db.write_engine.sync_engine, db.read_engine.sync_engine}:
        EngineTracer(tracer, engine, usage)


def operation_tracer() -> Any:
    """The tracer for GraphQL-over-HTTP operation spans (``boxoffice.graphql_http``)."""
    from opentelemetry.trace import get_tracer

    return get_tracer("boxoffice.graphql")


def graphql_tracing_extension() -> Any:
    """strawberry's OpenTelemetry extension (spans per operation, parse, validate, resolver)."""
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return OpenTelemetryExtension
