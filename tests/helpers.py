"""Small helpers for tests: GraphQL calls, factories for rows, tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from boxoffice.models.identity import Role, Tenant, TenantStatus, User
from boxoffice.runtime import Runtime
from boxoffice.services import accounts
from boxoffice.services.viewer import Viewer

PASSWORD = "correct-horse-9"


class GraphQLResult:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.body: dict[str, Any] = response.json()

    @property
    def data(self) -> dict[str, Any]:
        assert not self.body.get("errors"), self.body["errors"]
        assert self.body.get("data") is not None, self.body
        return self.body["data"]

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.body.get("errors") or []

    @property
    def code(self) -> str | None:
        errors = self.errors
        return errors[0].get("extensions", {}).get("code") if errors else None

    @property
    def error(self) -> dict[str, Any]:
        assert self.errors, f"expected an error, got {self.body}"
        return self.errors[0]


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
    operation_name: str | None = None,
    headers: dict[str, str] | None = None,
) -> GraphQLResult:
    sent = dict(headers or {})
    if token:
        sent["authorization"] = f"Bearer {token}"
    payload: dict[str, Any] = {"query": query, "variables": variables or {}}
    if operation_name:
        payload["operationName"] = operation_name
    response = await client.post("/graphql", json=payload, headers=sent)
    return GraphQLResult(response)


async def make_tenant(
    rt: Runtime, name: str = "Test Club", status: TenantStatus = TenantStatus.ACTIVE
) -> Tenant:
    async with rt.db.write() as session:
        tenant = Tenant(name=name, status=status)
        session.add(tenant)
    return tenant


async def make_user(
    rt: Runtime,
    email: str,
    role: Role = Role.CUSTOMER,
    tenant: Tenant | None = None,
    password: str = PASSWORD,
) -> User:
    return await accounts.create_user(
        db=rt.db,
        hasher=rt.auth.hasher,
        email=email,
        password=password,
        role=role,
        tenant_id=tenant.id if tenant else None,
    )


async def token_for(rt: Runtime, user: User) -> str:
    """An access token as sign-in would issue it (without a refresh token)."""
    async with rt.db.read() as session:
        roles = await accounts.roles_of(session, user)
    return rt.auth.tokens.issue(
        user_id=user.id,
        session_id="test-session-" + user.id,
        version=user.token_version,
        roles=roles.platform,
        tenant_roles=roles.tenants,
    )


async def viewer_for(rt: Runtime, user: User) -> Viewer:
    async with rt.db.read() as session:
        roles = await accounts.roles_of(session, user)
    return Viewer(
        user_id=user.id,
        roles=frozenset(roles.platform),
        tenant_roles={t: frozenset(r) for t, r in roles.tenants.items()},
        session_id="test-session-" + user.id,
    )


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    result = await gql(
        client,
        "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken expiresIn "
        "user { id roles } } }",
        {"i": {"email": email, "password": password}},
    )
    return result.data["login"]


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Wait (polling) until ``condition()`` holds; AssertionError naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
