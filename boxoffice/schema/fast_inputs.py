"""Build flat input objects without strawberry's generic converter.

strawberry turns each input object's dict into its dataclass by resolving every field's type
annotation on every request (``convert_argument`` → ``StrawberryField.resolve_type``): about
80 us of a ``createHold`` under cProfile, for seven fields. Inputs whose fields are all leaves
(scalars, enums, lists of them; graphql-core has already coerced each value) need none of
that, so each gets a ``from_input`` (strawberry's hook for inputs that build their own value)
computed once from its fields. Inputs with nested inputs, ``Maybe`` fields or anything else
keep strawberry's converter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any

import strawberry
from strawberry.schema.name_converter import NameConverter
from strawberry.types.arguments import _is_leaf_type
from strawberry.types.base import (
    StrawberryList,
    StrawberryMaybe,
    StrawberryObjectDefinition,
    StrawberryOptional,
)


def install(schema: strawberry.Schema) -> list[str]:
    """Give every flat input type of ``schema`` a direct builder; return their names."""
    converter = schema.schema_converter
    registry = converter.scalar_registry
    done: list[str] = []
    for name, concrete in converter.type_map.items():
        definition = concrete.definition
        if not isinstance(definition, StrawberryObjectDefinition) or not definition.is_input:
            continue
        if definition.from_input is not None:
            continue
        plan = _plan(definition, registry, schema.config.name_converter)
        if plan is not None:
            definition.from_input = plan
            done.append(name)
    return done


def _plan(
    definition: StrawberryObjectDefinition, registry: Mapping[object, Any], names: NameConverter
) -> Any:
    fields: list[tuple[str, str, bool]] = []
    implicit_none: dict[str, None] = {}
    for field in definition.fields:
        type_ = field.resolve_type(type_definition=definition)
        is_list = False
        if isinstance(type_, StrawberryMaybe):
            return None
        if isinstance(type_, StrawberryOptional):
            type_ = type_.of_type
        if isinstance(type_, StrawberryList):
            is_list = True
            type_ = type_.of_type
            if isinstance(type_, StrawberryMaybe):
                return None
            if isinstance(type_, StrawberryOptional):
                type_ = type_.of_type
        if not _is_leaf_type(type_, registry):
            return None
        graphql_name = names.from_field(field)
        fields.append((graphql_name, field.python_name, is_list))
        if field.default_value is MISSING and field.default_factory is MISSING:
            implicit_none[field.python_name] = None  # nullable without a default, as strawberry
    return _builder(tuple(fields), implicit_none)


def _builder(
    fields: tuple[tuple[str, str, bool], ...], implicit_none: dict[str, None]
) -> Callable[[type, Mapping[str, Any], Any], Any]:
    def from_input(cls: type, value: Mapping[str, Any], _context: Any) -> Any:
        kwargs: dict[str, Any] = dict(implicit_none)
        for graphql_name, python_name, is_list in fields:
            if graphql_name in value:
                given = value[graphql_name]
                # lists are copied: graphql-core hands every request the same default list
                kwargs[python_name] = list(given) if is_list and given is not None else given
        return cls(**kwargs)

    return from_input
