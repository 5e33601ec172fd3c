"""Column types and field helpers shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import operators
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

from boxoffice import pii
from boxoffice.clock import utcnow
from boxoffice.ids import new_id

ID_LENGTH = 26


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both PostgreSQL (timestamptz) and SQLite (naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def id_field() -> Any:
    return Field(default_factory=new_id, primary_key=True, max_length=ID_LENGTH)


def ref_field(
    foreign_key: str | None = None, *, index: bool = True, nullable: bool = False, **kw: Any
) -> Any:
    """A reference to another row's id."""
    return Field(
        default=None if nullable else ...,
        foreign_key=foreign_key,
        index=index,
        nullable=nullable,
        max_length=ID_LENGTH,
        **kw,
    )


def time_field(*, nullable: bool = True, index: bool = False, now: bool = False) -> Any:
    if now:
        return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=index)
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def json_field(default_factory: Any = dict) -> Any:
    return Field(default_factory=default_factory, sa_type=JSON, nullable=False)


class EnumString(TypeDecorator[Enum]):
    """A string enum stored as its value in a VARCHAR (no native enum types: easy
    migrations) and read back as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum_cls: type[Enum], length: int = 24) -> None:
        super().__init__(length)
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return str(self.enum_cls(value).value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Enum | None:
        return None if value is None else self.enum_cls(value)


def enum_field(default: Any, *, index: bool = False, length: int = 24) -> Any:
    """Enums are stored as their string value and read back as members."""
    return Field(
        default=default, sa_type=EnumString(type(default), length), nullable=False, index=index
    )


_SEARCHES = frozenset(
    {
        operators.eq,
        operators.ne,
        operators.in_op,
        operators.not_in_op,
        operators.like_op,
        operators.ilike_op,
        operators.startswith_op,
        operators.endswith_op,
        operators.contains_op,
    }
)


def _is_plain_value(operand: Any) -> bool:
    """A string (or a collection of them) given to compare with: never a column or other
    SQL expression (SQLAlchemy compares columns with each other internally)."""
    if isinstance(operand, str | bytes):
        return True
    return isinstance(operand, list | tuple | set | frozenset) and any(
        isinstance(o, str | bytes) for o in operand
    )


class EncryptedString(TypeDecorator[str]):
    """Personal data, sealed with the process's PII cipher on the way in and opened on the
    way out (``boxoffice.pii``): services read and write plain strings. A value written
    before encryption (no ``pii1:`` prefix) reads back as it is.

    Ciphertexts are randomised, so comparing the column with a value can never match:
    that raises ``TypeError`` — look the row up by its ``*_hash`` column instead."""

    impl = Text
    cache_ok = True

    class comparator_factory(TypeDecorator.Comparator[str]):
        def operate(self, op: Any, *other: Any, **kwargs: Any) -> Any:
            if op in _SEARCHES and any(_is_plain_value(o) for o in other):
                raise TypeError("an encrypted column cannot be searched; use its *_hash column")
            return super().operate(op, *other, **kwargs)

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else pii.cipher().encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else pii.cipher().decrypt(value)


def encrypted_field(*, nullable: bool = True) -> Any:
    """A column of personal data (see ``EncryptedString``)."""
    return Field(default=None, sa_type=EncryptedString(), nullable=nullable)


def lookup_hash_field(*, unique: bool = False) -> Any:
    """The keyed hash of an encrypted column, indexed for lookups (``boxoffice.pii``); kept
    in step with the column by the model's ``before_insert``/``before_update`` listeners."""
    return Field(default=None, max_length=64, nullable=True, index=True, unique=unique)


def changed(target: object, attribute: str) -> bool:
    """Whether a mapped object's attribute was set since it was loaded (or it is new)."""
    state = inspect(target)
    return bool(state.transient or state.pending or state.attrs[attribute].history.has_changes())
