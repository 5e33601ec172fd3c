"""Validation rules that refuse oversized operations before the expensive ones run.

Scanners and attackers send the same field hundreds of times, directives stacked on one field,
deep nesting, or fragments that spread each other twice per level (a "fragment bomb": 2^n
fields from n short lines). graphql-core's own rules would report one error per repetition and
compare overlapping fields in quadratic time, and strawberry's depth and alias limiters unfold
every fragment spread (exponential time on a bomb). These rules measure the document once per
fragment (memoised, capped), in ``enter_document`` before any other rule looks at a selection,
and abort validation with one error when a limit is passed:

- ``DirectiveLimit``: at most N directives on one node and M in the whole document;
- ``FieldRepeatLimit``: one response key (alias or name) at most N times in one selection set,
  counting what fragments and inline fragments bring into it;
- ``DepthLimit``: root fields are depth 0; a field nested deeper than N is refused
  (introspection fields are not measured, as strawberry's limiter did: in prod they are
  refused outright, and in dev GraphiQL's introspection query nests deeper than 12);
- ``AliasLimit``: at most N aliases per operation, fragments expanded;
- ``FieldCountLimit``: at most N fields per operation, fragments expanded.

``make_rules`` builds the rule classes once per schema (closures over their limits) so the
validation cache, keyed by the rule classes, keeps hitting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    visit,
)
from graphql.language import Visitor
from graphql.validation.validate import ValidationAbortedError

_CAP = 1_000_000  # expanded counts stop growing here


@dataclass(frozen=True, slots=True)
class Measure:
    fields: int = 0
    aliases: int = 0
    depth: int = 0  # levels of fields below (a leaf field is one level)

    def plus(self, other: Measure) -> Measure:
        return Measure(
            min(_CAP, self.fields + other.fields),
            min(_CAP, self.aliases + other.aliases),
            max(self.depth, other.depth),
        )


class _Measurer:
    """Measures selection sets with every fragment spread expanded, once per fragment (a cycle
    counts as empty; ``NoFragmentCyclesRule`` refuses it)."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = _fragments(document)
        self.memo: dict[str, Measure] = {}
        self.visiting: set[str] = set()

    def selection_set(self, node: SelectionSetNode | None) -> Measure:
        total = Measure()
        if node is None:
            return total
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                below = self.selection_set(selection.selection_set)
                introspection = selection.name.value.startswith("__")
                total = total.plus(
                    Measure(
                        1 + below.fields,
                        (1 if selection.alias else 0) + below.aliases,
                        0 if introspection else 1 + below.depth,
                    )
                )
            elif isinstance(selection, InlineFragmentNode):
                total = total.plus(self.selection_set(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                total = total.plus(self.fragment(selection.name.value))
        return total

    def fragment(self, name: str) -> Measure:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.visiting:
            return Measure()
        self.visiting.add(name)
        self.memo[name] = self.selection_set(fragment.selection_set)
        self.visiting.discard(name)
        return self.memo[name]


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _operations(document: DocumentNode) -> Iterator[OperationDefinitionNode]:
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            yield definition


def _operation_name(operation: OperationDefinitionNode) -> str:
    return operation.name.value if operation.name else "anonymous"


def _level(
    node: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> Iterator[FieldNode]:
    """The fields a selection set holds at its own level, fragments flattened."""
    for selection in node.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _level(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in seen:
                yield from _level(fragment.selection_set, fragments, seen | {name})


def _collect(document: DocumentNode) -> tuple[list[SelectionSetNode], list[tuple[Node, int]]]:
    """Every selection set, and every node carrying directives with how many."""
    selection_sets: list[SelectionSetNode] = []
    directives: list[tuple[Node, int]] = []

    class Collect(Visitor):
        def enter(self, node: Node, *_args: object) -> None:
            if isinstance(node, SelectionSetNode):
                selection_sets.append(node)
            found = getattr(node, "directives", None)
            if found:
                directives.append((node, len(found)))

    visit(document, Collect())
    return selection_sets, directives


def directive_limit(per_node: int, per_document: int) -> type[ValidationRule]:
    class DirectiveLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            _sets, directives = _collect(node)
            for carrier, count in directives:
                if count > per_node:
                    raise ValidationAbortedError(
                        f"{count} directives on one node (limit {per_node}).", carrier
                    )
            total = sum(count for _carrier, count in directives)
            if total > per_document:
                raise ValidationAbortedError(
                    f"The document uses {total} directives (limit {per_document})."
                )

    return DirectiveLimit


def field_repeat_limit(limit: int) -> type[ValidationRule]:
    class FieldRepeatLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            fragments = _fragments(node)
            selection_sets, _directives = _collect(node)
            for selection_set in selection_sets:
                repeats: Counter[str] = Counter()
                for field in _level(selection_set, fragments):
                    key = (field.alias or field.name).value
                    repeats[key] += 1
                    if repeats[key] > limit:  # stop at once: a bomb is never unfolded
                        raise ValidationAbortedError(
                            f"Field '{key}' is selected more than {limit} times in one selection.",
                            selection_set,
                        )

    return FieldRepeatLimit


def depth_limit(max_depth: int) -> type[ValidationRule]:
    class DepthLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            measurer = _Measurer(node)
            for operation in _operations(node):
                depth = measurer.selection_set(operation.selection_set).depth - 1
                if depth > max_depth:
                    raise ValidationAbortedError(
                        f"'{_operation_name(operation)}' exceeds maximum operation depth "
                        f"of {max_depth}",
                        operation,
                    )

    return DepthLimit


def alias_limit(max_aliases: int) -> type[ValidationRule]:
    class AliasLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            measurer = _Measurer(node)
            for operation in _operations(node):
                aliases = measurer.selection_set(operation.selection_set).aliases
                if aliases > max_aliases:
                    raise ValidationAbortedError(
                        f"{aliases} aliases found; allowed: {max_aliases} aliases", operation
                    )

    return AliasLimit


def field_count_limit(max_fields: int) -> type[ValidationRule]:
    class FieldCountLimit(ValidationRule):
        def enter_document(self, node: DocumentNode, *_args: object) -> None:
            measurer = _Measurer(node)
            for operation in _operations(node):
                fields = measurer.selection_set(operation.selection_set).fields
                if fields > max_fields:
                    raise ValidationAbortedError(
                        f"The operation selects {fields} fields (limit {max_fields}).", operation
                    )

    return FieldCountLimit


def make_rules(
    *,
    max_depth: int,
    max_aliases: int,
    max_field_repeats: int,
    max_fields: int,
    max_directives_per_node: int,
    max_directives: int,
) -> list[type[ValidationRule]]:
    """The rules for one schema, built once (see the module docstring)."""
    return [
        directive_limit(max_directives_per_node, max_directives),
        field_repeat_limit(max_field_repeats),
        depth_limit(max_depth),
        alias_limit(max_aliases),
        field_count_limit(max_fields),
    ]
