"""Migrations build exactly the models' schema on both databases and carry the data along
(0010 encrypts personal data); the SDL file is current."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import boxoffice.models
from boxoffice import pii
from boxoffice.cli import alembic_config, migrate
from boxoffice.clock import utcnow
from boxoffice.pii import PiiCipher
from boxoffice.runtime import Runtime
from boxoffice.schema import build_schema
from tests.conftest import settings_for
from tests.services import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent


async def test_migrations_match_models(rt: Runtime):
    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, boxoffice.models.metadata))

    async with rt.db.write_engine.connect() as connection:
        differences = await connection.run_sync(diff)
    assert differences == []


def test_schema_file_is_current():
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == build_schema().as_str() + "\n", (
        "run `make schema` and commit schema.graphql"
    )


def test_export_schema_command_prints_the_sdl():
    out = subprocess.run(
        [sys.executable, "-m", "boxoffice", "export-schema"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert out.stdout == (ROOT / "schema.graphql").read_text()


@pytest.fixture
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database with no tables yet, of the parametrized kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.db'}"
        return
    database = await create_database("bo_migrate")
    try:
        yield database.url
    finally:
        await drop_database(database)


PLAIN_ROWS = [
    (
        "INSERT INTO tenants (id, name, theme, features, contact, status, currency, created_at, "
        "updated_at) VALUES ('t1', 'Club', '{}', '{}', '{}', 'ACTIVE', 'CNY', :now, :now)"
    ),
    (
        "INSERT INTO users (id, email, phone, nickname, real_name, gender, status, roles, "
        "token_version, created_at, updated_at) VALUES ('u1', 'mei@example.com', "
        "'+8613800138000', 'mei', '韩梅梅', 0, 'ACTIVE', '[]', 1, :now, :now)"
    ),
    (
        "INSERT INTO orders (id, order_no, tenant_id, user_id, event_id, session_id, status, "
        "channel, currency, subtotal_minor, promotion_discount_minor, coupon_discount_minor, "
        "total_minor, refunded_minor, contact_name, contact_phone, hold_id, created_at, "
        "updated_at) VALUES ('o1', 'BO1', 't1', 'u1', 'e1', 's1', 'PAID', 'ONLINE', 'CNY', "
        "100, 0, 0, 100, 0, '韩梅梅', '+8613800138000', 'h1', :now, :now)"
    ),
    (
        "INSERT INTO wechat_accounts (id, app_id, openid, unionid, user_id, created_at) "
        "VALUES ('w1', 'wx-app', 'oOPENID1', 'uUNION1', 'u1', :now)"
    ),
    (
        "INSERT INTO sandbox_messages (id, channel, recipient, body, created_at) "
        "VALUES ('m1', 'SMS', '+8613800138000', 'code 123456', :now)"
    ),
]
PLAIN_VALUES = {
    ("users", "email"): "mei@example.com",
    ("users", "phone"): "+8613800138000",
    ("users", "real_name"): "韩梅梅",
    ("orders", "contact_name"): "韩梅梅",
    ("orders", "contact_phone"): "+8613800138000",
    ("wechat_accounts", "openid"): "oOPENID1",
    ("wechat_accounts", "unionid"): "uUNION1",
    ("sandbox_messages", "recipient"): "+8613800138000",
}
IDS = {"users": "u1", "orders": "o1", "wechat_accounts": "w1", "sandbox_messages": "m1"}


async def _raw(url: str, table: str, row_id: str) -> dict[str, object]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text(f'SELECT * FROM "{table}" WHERE id = :id'), {"id": row_id}
            )
            return dict(found.mappings().one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("empty_database", ["sqlite", "postgresql"], indirect=True)
async def test_migration_0010_encrypts_existing_personal_data_and_back(
    empty_database: str, tmp_path: Path
):
    # given a database at 0008 holding personal data in the clear
    url = empty_database
    pii.install(PiiCipher(settings_for(tmp_path).secrets.pii))
    await asyncio.to_thread(migrate, url, "0008")
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            if not url.startswith("sqlite"):
                await conn.execute(text("SET session_replication_role = replica"))  # no FKs
            for statement in PLAIN_ROWS:
                await conn.execute(text(statement), {"now": utcnow()})
    finally:
        await engine.dispose()
    # when it is migrated
    await asyncio.to_thread(migrate, url, "0010")
    # then every value is sealed with the current key, and hashed for lookups
    rows = {table: await _raw(url, table, row_id) for table, row_id in IDS.items()}
    for (table, column), plain in PLAIN_VALUES.items():
        stored = str(rows[table][column])
        assert stored.startswith("pii1:test1:") and plain not in stored, (table, column)
        assert pii.cipher().decrypt(stored) == plain
    assert rows["users"]["email_hash"] == pii.email_hash("mei@example.com")
    assert rows["users"]["phone_hash"] == pii.phone_hash("+8613800138000")
    assert rows["orders"]["contact_phone_hash"] == pii.phone_hash("+8613800138000")
    assert rows["wechat_accounts"]["openid_hash"] == pii.openid_hash("wx-app", "oOPENID1")
    assert rows["sandbox_messages"]["recipient_hash"] == pii.phone_hash("+8613800138000")
    # and going back opens them again
    await asyncio.to_thread(migrate_down, url, "0008")
    for (table, column), plain in PLAIN_VALUES.items():
        assert (await _raw(url, table, IDS[table]))[column] == plain, (table, column)


def migrate_down(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)
