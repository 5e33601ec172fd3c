"""Keyset pagination: opaque cursors over an ordered list of sort keys.

A cursor encodes the sort-key values of the last row a client saw (base64url JSON, versioned).
The next page is the rows strictly after it in the key order, so pages stay stable while rows
are added or removed, and no ``OFFSET`` scan is needed. The last key must be unique (the id).

Usage::

    keys = [SortKey(col(Event.starts_at), lambda e: e.starts_at, kind="datetime"),
            SortKey(col(Event.id), lambda e: e.id)]
    query = apply_keyset(select(Event).where(...), keys, after=cursor)
    rows = (await session.exec(query.limit(first + 1))).all()
    page = Page.from_rows(rows, keys, first)
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

import orjson
from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from boxoffice.clock import as_utc
from boxoffice.errors import BadUserInput

T = TypeVar("T")


class SortDirection(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


KeyKind = Literal["str", "int", "float", "datetime"]

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
_VERSION = 1


@dataclass(frozen=True)
class SortKey(Generic[T]):
    """One ordering term: the SQL expression, how to read its value from a row, its kind (for
    decoding cursors) and direction. Values must not be NULL: coalesce in ``expr`` and
    ``value`` alike when a column is nullable."""

    expr: Any
    value: Callable[[T], Any]
    kind: KeyKind = "str"
    descending: bool = False

    def order_by(self) -> Any:
        return self.expr.desc() if self.descending else self.expr.asc()


def page_size(
    first: int | None, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    if first is None:
        return default
    if first < 0:
        raise BadUserInput("first must be ≥ 0", field="first")
    if first > maximum:
        raise BadUserInput(f"first must be at most {maximum}", field="first")
    return first


def encode_cursor(values: Sequence[Any]) -> str:
    payload = [_VERSION, *(v.isoformat() if isinstance(v, datetime) else v for v in values)]
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


def decode_cursor(cursor: str, keys: Sequence[SortKey[Any]], *, field: str = "after") -> list[Any]:
    """The key values in ``cursor``; BAD_USER_INPUT naming ``field`` if it is not one of ours
    (or was made for another sort order)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadUserInput("The cursor is not valid.", field=field) from exc
    if not isinstance(payload, list) or len(payload) != len(keys) + 1 or payload[0] != _VERSION:
        raise BadUserInput("The cursor is not valid for this list.", field=field)
    out: list[Any] = []
    for key, value in zip(keys, payload[1:], strict=True):
        out.append(_parse(key.kind, value, field))
    return out


def _parse(kind: KeyKind, value: Any, field: str) -> Any:
    ok = True
    if kind == "datetime":
        try:
            return as_utc(datetime.fromisoformat(value))
        except (TypeError, ValueError):
            ok = False
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise BadUserInput("The cursor is not valid for this list.", field=field)
    return value


def after_condition(keys: Sequence[SortKey[Any]], values: Sequence[Any]) -> ColumnElement[bool]:
    """``(k1, k2, ...) > (v1, v2, ...)`` in the keys' directions, spelled out as
    ``k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...`` (mixed directions, both databases)."""
    terms: list[ColumnElement[bool]] = []
    for i, key in enumerate(keys):
        equal = [keys[j].expr == values[j] for j in range(i)]
        beyond = key.expr < values[i] if key.descending else key.expr > values[i]
        terms.append(and_(*equal, beyond))
    return or_(*terms)


def apply_keyset(query: Any, keys: Sequence[SortKey[Any]], *, after: str | None) -> Any:
    """``query`` ordered by ``keys`` and, with a cursor, restricted to the rows after it."""
    if after:
        query = query.where(after_condition(keys, decode_cursor(after, keys)))
    return query.order_by(*(key.order_by() for key in keys))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page: the rows with their cursors, and whether more follow."""

    items: list[T]
    cursors: list[str]
    has_next_page: bool

    @property
    def end_cursor(self) -> str | None:
        return self.cursors[-1] if self.cursors else None

    @property
    def start_cursor(self) -> str | None:
        return self.cursors[0] if self.cursors else None

    @classmethod
    def from_rows(cls, rows: Sequence[T], keys: Sequence[SortKey[T]], first: int) -> Page[T]:
        """``rows`` were fetched with ``limit(first + 1)``: the extra row means a next page."""
        items = list(rows[:first])
        return cls(
            items=items,
            cursors=[encode_cursor([key.value(item) for key in keys]) for item in items],
            has_next_page=len(rows) > first,
        )
