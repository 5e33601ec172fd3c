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


async def test_the_graphql_lane_answers_as_the_router_would(app, monkeypatch):
    """``POST /graphql`` skips the router (``BoxofficeApp``): same status, headers and body as
    through Starlette's full stack, with and without an Origin, and a crash still answers 500."""
    from starlette.applications import Starlette

    async def routed(scope, receive, send):
        await Starlette.__call__(app, scope, receive, send)

    requests = [
        ({}, b'{"query": "{ __typename }"}'),
        ({"origin": "https://shop.example"}, b'{"query": "{ __typename }"}'),
        ({}, b'{"query": "{ nope }"}'),
        ({}, b"not json"),
        ({"authorization": "Bearer forged"}, b'{"query": "{ me { id } }"}'),
    ]
    answers = []
    for target in (app, routed):
        transport = httpx.ASGITransport(app=target, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for headers, body in requests:
                response = await http.post(
                    "/graphql",
                    content=body,
                    headers={"content-type": "application/json", "x-request-id": "r-1", **headers},
                )
                answers.append(
                    (response.status_code, sorted(response.headers.items()), response.content)
                )
    assert answers[: len(requests)] == answers[len(requests) :]
    assert app._graphql_lane is not None
    assert ("vary", "Origin") in answers[0][1]
    assert ("x-request-id", "r-1") in answers[0][1]

    async def crash(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app._graphql_route.app, "_run", crash)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
