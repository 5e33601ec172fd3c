"""Alembic environment: async engines, SQLite-friendly batch mode, the package's metadata."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.sql.sqltypes import AutoString

import boxoffice.models
from boxoffice.config import Settings
from boxoffice.models.base import EncryptedString, EnumString, UTCDateTime

config = context.config
target_metadata = boxoffice.models.metadata


def _url() -> str:
    return config.attributes.get("database_url") or Settings().database_url


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render the package's column types as plain SQLAlchemy types, so migrations never
    import application code (they must keep working as the code moves on)."""
    if kind == "type":
        if isinstance(obj, UTCDateTime):
            return "sa.DateTime(timezone=True)"
        if isinstance(obj, EncryptedString):
            return "sa.Text()"
        if isinstance(obj, EnumString):
            return f"sa.String(length={obj.impl.length})"
        if isinstance(obj, AutoString):
            return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
        literal_binds=connection is None,
    )


def run_offline() -> None:
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    existing = config.attributes.get("connection")
    if existing is not None:
        _run_sync(existing)
        return
    engine = create_async_engine(_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    asyncio.run(run_online())
