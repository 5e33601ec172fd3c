"""Prometheus metrics of one process, in a registry of its own (one per app)."""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

disable_created_metrics()

MAX_OPERATION_NAMES = 300
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._names: set[str] = set()
        # labelled children of the per-request series, looked up once (``labels`` costs
        # ~0.8 us a call); bounded as their labels are (capped operation names, codes, kinds)
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.graphql_requests = Counter(
            "boxoffice_graphql_requests_total",
            "GraphQL operations executed",
            ["operation", "type"],
            registry=self.registry,
        )
        self.graphql_latency = Histogram(
            "boxoffice_graphql_request_duration_seconds",
            "GraphQL operation latency",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.graphql_errors = Counter(
            "boxoffice_graphql_errors_total",
            "GraphQL errors by operation and contract code",
            ["operation", "code"],
            registry=self.registry,
        )
        self.subscriptions = Gauge(
            "boxoffice_subscriptions_active",
            "Open GraphQL subscriptions",
            ["field"],
            registry=self.registry,
        )
        self.events = Counter(
            "boxoffice_domain_events_total",
            "Domain events (holds, orders, payments, check-ins, ...)",
            ["kind", "outcome"],
            registry=self.registry,
        )

        self.outbox_lag = Gauge(
            "boxoffice_outbox_lag_seconds",
            "Age of the oldest outbox event a consumer has not finished",
            ["consumer"],
            registry=self.registry,
        )
        self.queue_waiting = Gauge(
            "boxoffice_queue_waiting",
            "People waiting in an event's waiting room",
            ["event"],
            registry=self.registry,
        )
        self.queue_admitted = Counter(
            "boxoffice_queue_admitted_total",
            "People admitted from an event's waiting room",
            ["event"],
            registry=self.registry,
        )

    def labelled(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, remembered."""
        key = (metric, values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def operation(self, label: str, kind: str, seconds: float) -> None:
        """One GraphQL operation executed: its count by type and its latency."""
        self.labelled(self.graphql_requests, label, kind).inc()
        self.labelled(self.graphql_latency, label).observe(seconds)

    def count(self, kind: str, outcome: str = "ok", n: int = 1) -> None:
        """Count a domain event: holds, orders, payments, check-ins, expiries ..."""
        if n:
            self.labelled(self.events, kind, outcome).inc(n)

    def operation_label(self, name: str | None) -> str:
        """Client-chosen operation names, capped so they cannot blow up the label space."""
        if not name:
            return "anonymous"
        if name in self._names:
            return name
        if len(self._names) >= MAX_OPERATION_NAMES or len(name) > 64:
            return "other"
        self._names.add(name)
        return name

    def render(self) -> bytes:
        return generate_latest(self.registry)
