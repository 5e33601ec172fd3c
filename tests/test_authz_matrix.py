"""Every mutation and every tenant-scoped query, called through GraphQL as each role: the
answer must be the one ``tests/authz_matrix.py`` lists (ALLOW, or the error code)."""

from __future__ import annotations

import os

import httpx
import pytest
from graphql import GraphQLScalarType, get_named_type

from boxoffice.runtime import Runtime
from boxoffice.schema import build_schema
from tests.authz_matrix import ALLOW, HIDDEN, MATRIX, NULL
from tests.authz_operations import OPERATIONS, ROLES, build_world, finish_world
from tests.helpers import GraphQLResult, gql

ID_ARGUMENT_NAMES = ("id", "tenantId")


def _takes_an_id(field: object) -> bool:
    for name, argument in field.args.items():  # type: ignore[attr-defined]
        named = get_named_type(argument.type)
        if (
            name in ID_ARGUMENT_NAMES
            or name.endswith("Id")
            or (isinstance(named, GraphQLScalarType) and named.name == "ID")
        ):
            return True
    return False


def test_every_mutation_and_id_taking_query_is_in_the_matrix():
    schema = build_schema()._schema
    assert schema.mutation_type is not None
    required = set(schema.mutation_type.fields)
    required |= {name for name, f in schema.query_type.fields.items() if _takes_an_id(f)}  # type: ignore[union-attr]
    missing = sorted(required - set(MATRIX))
    assert not missing, f"add these operations to tests/authz_matrix.py: {missing}"
    assert set(MATRIX) <= set(OPERATIONS), sorted(set(MATRIX) - set(OPERATIONS))
    assert all(len(row) == len(ROLES) for row in MATRIX.values())


def outcome_of(result: GraphQLResult) -> str:
    """The error code; else NULL when the root field came back null (a read that hides what
    the caller may not see), HIDDEN when every field asked of it is null, else ALLOW."""
    if result.code:
        return result.code
    data = result.body.get("data") or {}
    value = next(iter(data.values()), None) if data else None
    if value is None:
        return NULL
    if isinstance(value, dict) and value and all(v is None for v in value.values()):
        return HIDDEN
    return ALLOW


@pytest.mark.parametrize("backend", ["embedded"])
async def test_the_matrix_holds(client: httpx.AsyncClient, rt: Runtime):
    # given a world of two tenants, a victim customer with a paid order, and every role
    world = await build_world(rt, client)
    await finish_world(world)
    discovered: dict[str, list[str]] = {}
    mismatches: list[str] = []
    # when each operation is called as each role
    for name, call in OPERATIONS.items():
        row: list[str] = []
        for role in ROLES:
            caller = world.callers[role]
            variables = await call.build(world, caller)
            result = await gql(client, call.document, variables, token=caller.token)
            outcome = outcome_of(result)
            row.append(outcome)
            expected = MATRIX.get(name, (None,) * len(ROLES))[ROLES.index(role)]
            if outcome != expected:
                detail = result.errors[0]["message"] if result.errors else "data"
                mismatches.append(
                    f"{name} as {role}: expected {expected}, got {outcome} ({detail})"
                )
        discovered[name] = row
    if os.environ.get("AUTHZ_DISCOVER"):
        for name, row in discovered.items():
            print(f'    "{name}": ({", ".join(repr(c) for c in row)}),')
    # then every answer is the table's
    assert not mismatches, "\n".join(mismatches)
