"""Flat input objects are built directly (``schema/fast_inputs.py``) and come out exactly as
strawberry's own converter makes them; inputs with nested inputs keep strawberry's."""

from __future__ import annotations

from typing import Any

import pytest
from strawberry.types.arguments import convert_argument

from boxoffice.schema import build_schema
from boxoffice.schema.inventory import CreateHoldInput

SCHEMA = build_schema()


def strawberry_built(cls: type, value: dict[str, Any]) -> Any:
    """What strawberry's generic converter makes of ``value`` (the hook switched off)."""
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    hook, definition.from_input = definition.from_input, None
    try:
        return convert_argument(value, cls, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    finally:
        definition.from_input = hook


@pytest.mark.parametrize(
    "value",
    [
        {"sessionId": "s1"},
        {"sessionId": "s1", "tierId": "t1", "quantity": 2, "allowSplit": True},
        {"sessionId": "s1", "seatIds": ["a", "b"], "queueToken": None, "channel": "agent-x"},
        {"sessionId": "s1", "seatIds": None},
    ],
)
def test_flat_inputs_match_strawberrys_conversion(value: dict[str, Any]):
    definition = CreateHoldInput.__strawberry_definition__  # type: ignore[attr-defined]
    assert definition.from_input is not None
    fast = definition.from_input(CreateHoldInput, value, None)
    assert fast == strawberry_built(CreateHoldInput, value)


def test_lists_are_copied_so_requests_do_not_share_them():
    given = ["a", "b"]
    definition = CreateHoldInput.__strawberry_definition__  # type: ignore[attr-defined]
    built = definition.from_input(CreateHoldInput, {"sessionId": "s", "seatIds": given}, None)
    assert built.seat_ids == given and built.seat_ids is not given


def test_inputs_with_nested_inputs_keep_strawberrys_converter():
    nested = {"CreateOrderInput", "CreateSeatMapInput", "BoxOfficeSaleInput"}
    for name in nested:
        definition = SCHEMA.schema_converter.type_map[name].definition
        assert definition.from_input is None, name
