"""Process endpoints: health, readiness, metrics, request ids."""

from __future__ import annotations

import httpx

from boxoffice.db import Database
from boxoffice.runtime import Runtime
from tests.helpers import gql


async def test_health_and_readiness(client: httpx.AsyncClient):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "database": "ok", "broker": "ok"}


async def test_readiness_fails_when_the_database_is_gone(client: httpx.AsyncClient, rt: Runtime):
    # given the database becomes unreachable
    working = rt.db
    rt.db = Database(
        "sqlite+aiosqlite:////nonexistent/dir/x.db"
        if working.is_sqlite
        else "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    )
    try:
        ready = await client.get("/readyz")
    finally:
        await rt.db.dispose()
        rt.db = working
    # then the process says it is not ready, and why
    assert ready.status_code == 503
    assert ready.json()["database"].startswith("error")
    assert ready.json()["broker"] == "ok"


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient):
    given = await client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert made.headers["x-request-id"] != "bad id with spaces"
    assert len(made.headers["x-request-id"]) == 26


async def test_metrics_count_operations_and_error_codes(client: httpx.AsyncClient):
    await gql(client, "query Who { me { id } }", operation_name="Who")
    await gql(
        client,
        'mutation Bad { login(input: {email: "x@example.com", password: "nope-nope-1"}) { accessToken } }',
        operation_name="Bad",
    )
    text = (await client.get("/metrics")).text
    assert 'boxoffice_graphql_requests_total{operation="Who",type="query"} 1.0' in text
    assert 'boxoffice_graphql_errors_total{code="INVALID_CREDENTIALS",operation="Bad"} 1.0' in text
    assert 'boxoffice_graphql_request_duration_seconds_count{operation="Who"} 1.0' in text
