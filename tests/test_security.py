"""What a GraphQL security scanner (graphql-cop, InQL, Escape) checks over HTTP, each refused:
schema discovery in prod, alias / field / directive overloading, deep and circular queries,
fragment bombs, batching, GET mutations, cross-site (CSRF) bodies, oversized bodies and debug
output."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from boxoffice.runtime import Runtime
from tests.helpers import GraphQLResult, gql, make_user, token_for

pytestmark = pytest.mark.parametrize("backend", ["embedded"])

PROD = pytest.mark.settings(env="prod")

# Each probe is refused with a "Did you mean" hint in dev; prod must not name the schema.
SUGGESTION_PROBES: list[tuple[str, str, dict[str, object]]] = [
    ("field", "{ mee { id } }", {}),
    ("argument", '{ event(idd: "x") { id } }', {}),
    ("enum literal", "{ myOrders(status: PAI) { totalCount } }", {}),
    ("input field", 'mutation { login(input: {emial: "a@b.c"}) { accessToken } }', {}),
    ("variable type", "query($x: Strin) { me { id } }", {}),
    ("enum variable", "query($s: OrderStatus) { myOrders(status: $s) { totalCount } }",
     {"s": "PAI"}),
]  # fmt: skip


def single_error(result: GraphQLResult) -> dict[str, object]:
    assert result.body.get("data") is None, result.body
    assert len(result.errors) == 1, result.errors
    assert result.code == "BAD_USER_INPUT"
    return result.error


# --- schema discovery -------------------------------------------------------------------------


@PROD
@pytest.mark.parametrize(
    "query",
    [
        "{ __schema { types { name } } }",
        '{ __type(name: "User") { fields { name } } }',
        "query { me { id } __schema { queryType { name } } }",
    ],
)
async def test_introspection_is_off_in_prod(client: httpx.AsyncClient, query: str):
    result = await gql(client, query)
    assert result.code == "BAD_USER_INPUT"
    assert "introspection" in result.error["message"].lower()
    assert result.body.get("data") is None


@PROD
async def test_graphiql_is_off_in_prod_but_typename_answers(client: httpx.AsyncClient):
    ide = await client.get("/graphql", headers={"accept": "text/html"})
    assert ide.status_code == 404
    assert "graphiql" not in ide.text.lower()
    assert (await gql(client, "{ __typename }")).data == {"__typename": "Query"}


@pytest.mark.parametrize(("kind", "query", "variables"), SUGGESTION_PROBES)
@pytest.mark.parametrize(
    "env", [pytest.param("prod", marks=PROD), pytest.param("dev", marks=pytest.mark.settings())]
)
async def test_no_suggestions_in_prod(
    client: httpx.AsyncClient, env: str, kind: str, query: str, variables: dict[str, object]
):
    # when a client probes a misspelt name
    result = await gql(client, query, variables)
    # then it is refused, and only dev hints at the real name
    assert result.errors, kind
    hinted = any("Did you mean" in e["message"] for e in result.errors)
    assert hinted is (env == "dev"), (kind, result.errors)


# --- overloading ------------------------------------------------------------------------------


async def test_alias_overloading_is_refused(client: httpx.AsyncClient):
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(100)) + " }"
    error = single_error(await gql(client, query))
    assert "aliases" in str(error["message"])


async def test_aliases_inside_a_repeated_fragment_count_each_time(client: httpx.AsyncClient):
    # a fragment with 4 aliases, spread 10 times through distinct fields: 40 aliases
    fragment = "fragment F on User { a: id b: id c: id d: id }"
    query = "{ me { ...F } " + " ".join(f"m{i}: me {{ ...F }}" for i in range(9)) + " } "
    error = single_error(await gql(client, query + fragment))
    assert "aliases" in str(error["message"])


@pytest.mark.parametrize(
    "query",
    [
        "{ " + "__typename " * 500 + "}",
        "{ me { " + "id " * 100 + "} }",
        "{ me { id ...F ...F ...F ...F ...F ...F ...F ...F ...F ...F ...F } } "
        "fragment F on User { id }",
    ],
    ids=["root", "nested", "through-fragments"],
)
async def test_field_duplication_is_refused_with_one_error(client: httpx.AsyncClient, query: str):
    error = single_error(await gql(client, query))
    assert "selected more than 10 times" in str(error["message"])


async def test_a_fragment_bomb_is_refused(client: httpx.AsyncClient):
    # given 16 fragments, each spreading the previous one twice: 2^15 copies of `id`
    fragments = ["fragment F0 on User { id }"] + [
        f"fragment F{i} on User {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, 16)
    ]
    query = "{ me { ...F15 } } " + " ".join(fragments)
    # then one error, before anything unfolds the fragments
    single_error(await gql(client, query))


@pytest.mark.settings(max_fields=20)
async def test_too_many_fields_are_refused(client: httpx.AsyncClient):
    fields = "id email phone nickname status roles createdAt"
    query = "{ " + " ".join(f"u{i}: me {{ {fields} }}" for i in range(3)) + " }"
    error = single_error(await gql(client, query))
    assert "fields (limit 20)" in str(error["message"])
    assert (await gql(client, "{ me { id } }")).body.get("errors") is None


@pytest.mark.parametrize(
    "directives",
    ["@aa" * 10, "@include(if: true)" * 50, "@skip(if: false)@include(if: true)" * 3],
    ids=["unknown", "repeated", "mixed"],
)
async def test_directive_overloading_is_refused_with_one_error(
    client: httpx.AsyncClient, directives: str
):
    # graphql-cop's probe: one error per stacked directive means the server processed each
    error = single_error(await gql(client, "query { __typename " + directives + " }"))
    assert "directives on one node" in str(error["message"])


@pytest.mark.settings(max_directives=5)
async def test_too_many_directives_in_a_document_are_refused(client: httpx.AsyncClient):
    query = "{ " + " ".join(f"a{i}: __typename @include(if: true)" for i in range(6)) + " }"
    error = single_error(await gql(client, query))
    assert "6 directives (limit 5)" in str(error["message"])


# --- depth and cycles -------------------------------------------------------------------------


async def test_deep_nesting_through_fragments_is_refused(client: httpx.AsyncClient):
    levels = 14
    fragments = " ".join(
        f"fragment L{i} on Tenant {{ members {{ user {{ memberships {{ tenant {{ ...L{i + 1} }} }} }} }} }}"
        for i in range(levels)
    )
    query = (
        "{ me { memberships { tenant { ...L0 } } } } "
        + fragments
        + (f" fragment L{levels} on Tenant {{ id }}")
    )
    error = single_error(await gql(client, query))
    assert "exceeds maximum operation depth" in str(error["message"])


async def test_circular_fragments_are_refused(client: httpx.AsyncClient):
    query = (
        "{ me { ...A } } "
        "fragment A on User { id memberships { user { ...B } } } "
        "fragment B on User { id memberships { user { ...A } } }"
    )
    result = await gql(client, query)
    assert result.body.get("data") is None
    assert result.code == "BAD_USER_INPUT"
    assert any("Cannot spread fragment 'A' within itself" in e["message"] for e in result.errors)


# --- batching and methods ---------------------------------------------------------------------


async def test_json_array_batches_are_refused(client: httpx.AsyncClient):
    batch = [{"query": f'mutation {{ sendSmsCode(phone: "1380013800{i}", purpose: LOGIN) }}'}
             for i in range(5)]  # fmt: skip
    response = await client.post("/graphql", json=batch)
    assert response.status_code == 400
    assert "batch" in response.text.lower()


async def test_a_document_of_many_operations_needs_an_operation_name(client: httpx.AsyncClient):
    document = (
        'query A { me { id } } query B { __typename } mutation C { logout(refreshToken: "x") }'
    )
    # when no operation is named, nothing runs
    result = await gql(client, document)
    assert result.body.get("data") is None
    assert "operation name" in result.error["message"]
    # when one is named, only that one runs
    named = await gql(client, document, operation_name="B")
    assert named.data == {"__typename": "Query"}


@pytest.mark.parametrize(
    "params",
    [
        {"query": 'mutation { logout(refreshToken: "x") }'},
        {"query": 'query Q { me { id } } mutation M { logout(refreshToken: "x") }',
         "operationName": "M"},
    ],
    ids=["mutation", "named-in-a-document"],
)  # fmt: skip
async def test_mutations_over_get_are_refused(client: httpx.AsyncClient, params: dict[str, str]):
    response = await client.get("/graphql", params=params)
    assert response.status_code in (400, 405)
    assert "mutation" in response.text.lower()


# --- cross-site request forgery ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", "query=%7B+me+%7B+id+%7D+%7D"),
        ("multipart/form-data; boundary=X",
         '--X\r\nContent-Disposition: form-data; name="query"\r\n\r\n{ me { id } }\r\n--X--\r\n'),
        ("text/plain", '{"query": "{ me { id } }"}'),
        ("text/plain; application/json", '{"query": "{ me { id } }"}'),
        ("application/graphql", "{ me { id } }"),
        (None, '{"query": "{ me { id } }"}'),
    ],
    ids=["urlencoded", "multipart", "text-plain", "text-plain-param", "graphql", "none"],
)  # fmt: skip
async def test_post_bodies_a_browser_sends_cross_site_are_refused(
    client: httpx.AsyncClient, rt: Runtime, content_type: str | None, body: str
):
    # given a signed-in user whose token a forged request would carry
    user = await make_user(rt, "csrf@example.com")
    headers = {"authorization": f"Bearer {await token_for(rt, user)}"}
    if content_type is not None:
        headers["content-type"] = content_type
    # when a page on another site posts a form-like body
    response = await client.post("/graphql", content=body.encode(), headers=headers)
    # then nothing runs
    assert response.status_code == 415
    assert user.id not in response.text


async def test_json_with_a_charset_is_accepted(client: httpx.AsyncClient):
    response = await client.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }"}).encode(),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200
    assert response.json() == {"data": {"__typename": "Query"}}


# --- oversized bodies -------------------------------------------------------------------------


async def test_an_oversized_body_without_content_length_is_refused(client: httpx.AsyncClient):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"query": "{ me { id } }", "pad": "'
        for _ in range(64):
            yield b"x" * 16384
        yield b'"}'

    response = await client.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


# --- debug output -----------------------------------------------------------------------------

LEAKS = ("Traceback", 'File "', "SELECT", "/work/", "site-packages", "boxoffice/", "sqlalchemy")


@PROD
async def test_prod_errors_carry_no_stack_sql_or_paths(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
):
    # given a service failing with the kind of detail a database driver puts in its errors
    import boxoffice.services.tenants as tenants

    async def broken(**_kwargs: object) -> list[object]:
        raise RuntimeError(
            'SELECT * FROM "user" WHERE id = 1 -- File "/work/boxoffice/services/tenants.py"'
        )

    monkeypatch.setattr(tenants, "list_tenants", broken)
    # when a client triggers it
    result = await gql(client, "{ tenants { id } }")
    # then it sees INTERNAL and a generic message, nothing else
    assert result.code == "INTERNAL"
    assert set(result.error) <= {"message", "locations", "path", "extensions"}
    assert set(result.error["extensions"]) == {"code", "status"}
    for leak in LEAKS:
        assert leak not in result.response.text, leak


@PROD
@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"query": 42}', b'{"query": "{ me { id }"}', b'{"query": "{ me(x: ) }"}'],
    ids=["bad-json", "query-not-string", "syntax", "syntax-argument"],
)
async def test_prod_malformed_requests_leak_nothing(client: httpx.AsyncClient, body: bytes):
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 400)
    for leak in LEAKS:
        assert leak not in response.text, leak
