"""GraphQL hygiene: depth, alias, token and body limits, batching and GET mutations refused,
internal errors masked, and the production switches."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from boxoffice.app import create_app
from boxoffice.runtime import Runtime
from tests.conftest import running
from tests.helpers import gql


async def test_deep_query_is_refused(client: httpx.AsyncClient):
    query = "{ me { " + "memberships { tenant { " * 10 + "id" + " } }" * 10 + " } }"
    result = await gql(client, query)
    assert result.code == "BAD_USER_INPUT"
    assert result.body.get("data") is None
    assert any("exceeds maximum operation depth" in e["message"] for e in result.errors)


async def test_many_aliases_are_refused(client: httpx.AsyncClient):
    query = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(200)) + " }"
    result = await gql(client, query)
    assert result.code == "BAD_USER_INPUT"
    assert "aliases" in result.error["message"]


async def test_megabyte_query_is_refused(client: httpx.AsyncClient):
    query = "{ me { id } }" + " " * (1024 * 1024)
    response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 413
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "too large" in body["errors"][0]["message"]


async def test_too_many_tokens_are_refused(client: httpx.AsyncClient):
    query = "{ me { " + " ".join(["id"] * 5000) + " } }"
    result = await gql(client, query)
    assert result.code == "BAD_USER_INPUT"
    assert "token" in result.error["message"].lower()


async def test_batching_is_off(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql", json=[{"query": "{ me { id } }"}, {"query": "{ me { id } }"}]
    )
    assert response.status_code == 400


async def test_mutations_over_get_are_refused(client: httpx.AsyncClient):
    response = await client.get(
        "/graphql", params={"query": 'mutation { logout(refreshToken: "x") }'}
    )
    assert response.status_code in (400, 405)
    assert "mutation" in response.text.lower()
    ok = await client.get("/graphql", params={"query": "{ me { id } }"})
    assert ok.status_code == 200


async def test_unexpected_errors_are_masked(rt: Runtime, caplog: pytest.LogCaptureFixture):
    # given a resolver that blows up inside a service
    import boxoffice.services.tenants as tenants

    original = tenants.list_tenants

    async def broken(**_kwargs: object) -> list[object]:
        raise RuntimeError("secret database detail")

    app = create_app(runtime=rt)
    tenants.list_tenants = broken  # type: ignore[assignment]
    try:
        async with running(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                result = await gql(client, "{ tenants { id } }", headers={"x-request-id": "req-42"})
    finally:
        tenants.list_tenants = original
    # then the client sees INTERNAL and nothing else
    assert result.code == "INTERNAL"
    assert "secret" not in result.response.text
    assert result.response.headers["x-request-id"] == "req-42"
    # and the log has the real error
    assert any("secret database detail" in (r.exc_text or str(r.exc_info)) for r in caplog.records)


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(env="prod")
async def test_production_switches(client: httpx.AsyncClient, app: object):
    introspection = await gql(client, "{ __schema { types { name } } }")
    assert introspection.code == "BAD_USER_INPUT"
    assert "introspection" in introspection.error["message"].lower()
    suggestion = await gql(client, "{ mee { id } }")
    assert "Did you mean" not in suggestion.error["message"]
    ide = await client.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 404
    assert "/sandbox/messages" not in [r.path for r in app.routes if isinstance(r, Route)]  # type: ignore[attr-defined]


async def test_dev_has_graphiql_and_introspection(client: httpx.AsyncClient):
    ide = await client.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    assert (await gql(client, "{ __schema { queryType { name } } }")).data


def test_prod_refuses_to_start_without_secrets(tmp_path: Path):
    from boxoffice.config import Settings
    from boxoffice.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="BOXOFFICE_JWT_SECRET"):
        create_app(Settings(env="prod", data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="at least 32 bytes"):
        create_app(
            Settings(env="prod", jwt_secret="short", ticket_signing_key="A" * 44, data_dir=tmp_path)
        )
