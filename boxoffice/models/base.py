"""Column types and field helpers shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Any

from sqlalchemy import JSON, DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field

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
