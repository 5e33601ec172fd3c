"""Observability: domain counters, outbox lag, and OpenTelemetry spans for GraphQL, SQL and
Redis when tracing is on."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from boxoffice.app import create_app
from boxoffice.runtime import Runtime, open_runtime
from tests.conftest import running, settings_for
from tests.helpers import gql, make_user, token_for
from tests.order_factories import on_sale
from tests.queue_factories import customers, queue_sale


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


async def test_queue_waiting_and_admitted_are_exported(client: httpx.AsyncClient, rt: Runtime):
    from boxoffice.jobs import admit_queues

    # given a waiting room letting in two a tick, opened by a tick, and five in its line
    sale = await queue_sale(rt, admit_per_second=round(2 / rt.settings.queue_tick_seconds))
    other = await queue_sale(rt, title="Other Show", tenant=sale.tenant)
    await admit_queues(rt)
    for user, _token in await customers(rt, 5):
        await rt.backends.waiting_room.join(sale.event.id, user.id, now=time.time())
    # when the admission ticker ticks once more
    assert await admit_queues(rt) == 2
    # then /metrics shows, per event, who waits and how many got in
    text = (await client.get("/metrics")).text
    assert f'boxoffice_queue_waiting{{event="{sale.event.id}"}} 3.0' in text
    assert f'boxoffice_queue_admitted_total{{event="{sale.event.id}"}} 2.0' in text
    assert f'boxoffice_queue_waiting{{event="{other.event.id}"}} 0.0' in text
    assert f'boxoffice_queue_admitted_total{{event="{other.event.id}"}}' not in text
    # and the next tick lets two more in
    assert await admit_queues(rt) == 2
    text = (await client.get("/metrics")).text
    assert f'boxoffice_queue_waiting{{event="{sale.event.id}"}} 1.0' in text
    assert f'boxoffice_queue_admitted_total{{event="{sale.event.id}"}} 4.0' in text


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
