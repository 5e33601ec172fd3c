"""Observability: domain counters, outbox lag, and OpenTelemetry spans for GraphQL, SQL and
Redis when tracing is on."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from boxoffice.app import create_app
from boxoffice.runtime import Runtime, open_runtime
from tests.conftest import running, settings_for
from tests.helpers import gql, make_user, token_for
from tests.order_factories import on_sale


async def test_domain_counters_and_outbox_lag_are_exported(client: httpx.AsyncClient, rt: Runtime):
    from boxoffice.jobs import measure_outbox_lag

    sale = await on_sale(rt)
    token = await token_for(rt, await make_user(rt, "fan@example.com"))
    await gql(
        client,
        "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }",
        {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}},
        token=token,
    )
    await measure_outbox_lag(rt)
    text = (await client.get("/metrics")).text
    assert 'boxoffice_domain_events_total{kind="hold",outcome="ok"} 1.0' in text
    assert 'boxoffice_outbox_lag_seconds{consumer="notifications"}' in text
    assert "boxoffice_subscriptions_active" in text


@pytest.mark.parametrize("backend", ["pg_redis"])
async def test_traces_cover_graphql_sql_and_redis(settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from boxoffice import tracing
    from boxoffice.db import Database

    # given tracing on, with spans kept in memory
    exporter = InMemorySpanExporter()
    traced = settings_for(
        tmp_path,
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        otel_enabled=True,
    )
    probe = Database(traced.database_url)
    tracing.configure_tracing(traced, probe, exporter=exporter)
    await probe.dispose()
    rt = await open_runtime(traced)
    try:
        user = await make_user(rt, "traced@example.com")
        token = await token_for(rt, user)
        app = create_app(runtime=rt)
        async with running(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                # when a signed-in query runs
                result = await gql(
                    client,
                    "query Traced { me { id } tenants { id } }",
                    token=token,
                    operation_name="Traced",
                )
                assert result.data["me"]["id"] == user.id
    finally:
        await rt.close()
    # then there are spans for the operation, its SQL and its Redis calls
    names = [span.name for span in exporter.get_finished_spans()]
    assert any("Traced" in n for n in names), ", ".join(names)
    assert any(n.startswith("SELECT") for n in names), ", ".join(names)
    assert "MGET" in names, names
