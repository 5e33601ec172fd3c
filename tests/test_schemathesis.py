"""schemathesis against the GraphQL schema: operations generated from the SDL with valid-by-
schema arguments (fixed seed, a few examples each) are sent through the app as a signed-in
operator, so mutations reach the services. None may answer 500 or an ``INTERNAL`` error."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation.case import Case
from schemathesis.graphql import nodes

from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from boxoffice.schema import build_schema
from tests.helpers import make_tenant, make_user, token_for
from tests.order_factories import on_sale

EXAMPLES = 8
REAL = "@real"

# A handful of operations that take free-form input: catalog reads, the admin writes that
# validate the most, and the sale path.
OPERATIONS = [
    "Query.events",
    "Query.eventCalendar",
    "Query.sessionAvailability",
    "Query.merchantOrders",
    "Query.salesStats",
    "Mutation.createTenant",
    "Mutation.createVenue",
    "Mutation.createSeatMap",
    "Mutation.createEvent",
    "Mutation.createSession",
    "Mutation.createTicketTier",
    "Mutation.createCoupon",
    "Mutation.createHold",
    "Mutation.createOrder",
    "Mutation.updateProfile",
    "Mutation.addToBlacklist",
]


def _register_scalars() -> None:
    moments = st.datetimes(
        min_value=dt.datetime(1990, 1, 1),
        max_value=dt.datetime(2090, 1, 1),
        timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=8))]),
    )
    schemathesis.graphql.scalar("DateTime", moments.map(lambda d: nodes.String(d.isoformat())))
    schemathesis.graphql.scalar("Date", st.dates().map(lambda d: nodes.String(d.isoformat())))
    schemathesis.graphql.scalar(
        "Decimal",
        st.one_of(
            st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=4),
            st.sampled_from([Decimal("NaN"), Decimal("Infinity"), Decimal("1E+400")]),
        ).map(lambda d: nodes.String(str(d))),
    )
    # IDs are placeholders swapped for the ids of real rows when sent, so inputs reach past
    # NOT_FOUND into the services' own checks.
    schemathesis.graphql.scalar("ID", st.sampled_from([REAL, "x"]).map(nodes.String))
    schemathesis.graphql.scalar("BigInt", st.integers(-(2**53), 2**53).map(nodes.Int))
    schemathesis.graphql.scalar(
        "JSON",
        st.one_of(st.integers(0, 9).map(nodes.Int), st.text(max_size=8).map(nodes.String)),
    )


def _bodies(operation: Any) -> list[str]:
    found: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(operation.as_strategy())
    def collect(case: Case) -> None:
        found.append(str(case.body))

    collect()
    return found


def generated_cases() -> list[tuple[str, dict[str, Any]]]:
    """``EXAMPLES`` bodies per operation, the same on every run (derandomised)."""
    _register_scalars()
    schema = schemathesis.graphql.from_dict({"__schema": build_schema().introspect()["__schema"]})
    wanted = set(OPERATIONS)
    cases: list[tuple[str, dict[str, Any]]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label in wanted:
            cases += [(operation.label, {"query": body}) for body in _bodies(operation)]
    assert {label for label, _ in cases} == wanted
    return cases


def with_real_ids(query: str, ids: dict[str, str]) -> str:
    """Each ``"@real"`` id becomes the id of the row its argument names (``sessionId`` → the
    session on sale); ``"x"`` stays, an id of nothing."""
    out, last = [], 0
    for found in re.finditer(r'(\w+):\s*\[?|"@real"', query):
        if found.group(0) != f'"{REAL}"':
            key = found.group(1)
            continue
        out.append(query[last : found.start()])
        out.append(f'"{ids.get(key, "x")}"')
        last = found.end()
    return "".join(out) + query[last:]


@pytest.fixture(scope="module")
def cases() -> list[tuple[str, dict[str, Any]]]:
    return generated_cases()


async def test_generated_operations_never_fail_internally(
    client: httpx.AsyncClient, rt: Runtime, cases: list[tuple[str, dict[str, Any]]]
):
    # given a catalog on sale and a signed-in operator
    sale = await on_sale(rt, tenant=await make_tenant(rt, "Fuzz Club"))
    ids = {
        "tenantId": sale.tenant.id,
        "venueId": sale.event.venue_id,
        "seatMapId": sale.seat_map.id,
        "eventId": sale.event.id,
        "sessionId": sale.session.id,
        "tierId": sale.ga.id,
        "seatIds": sale.seat_ids[0],
    }
    operator = await make_user(rt, "fuzz-operator@example.com", Role.OPERATOR)
    headers = {"authorization": f"Bearer {await token_for(rt, operator)}"}
    failures: list[str] = []
    # when every generated operation is sent
    for label, body in cases:
        query = with_real_ids(body["query"], ids)
        response = await client.post("/graphql", json={"query": query}, headers=headers)
        # then each is answered: data or a contract error, never a crash
        if response.status_code >= 500:
            failures.append(f"{label}: HTTP {response.status_code} for {query}")
            continue
        errors = response.json().get("errors") or []
        if any(e.get("extensions", {}).get("code") in (None, "INTERNAL") for e in errors):
            failures.append(f"{label}: {errors} for {query}")
    assert not failures, "\n".join(failures)
