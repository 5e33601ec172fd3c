"""Scalars beyond GraphQL's own (registered in the schema's ``scalar_map``)."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

BigInt = NewType("BigInt", int)

SCALAR_MAP: dict[object, ScalarDefinition] = {
    BigInt: strawberry.scalar(
        name="BigInt",
        description="A whole number that may exceed 32 bits (exact up to 2^53), as a JSON number.",
        serialize=int,
        parse_value=int,
    )
}
