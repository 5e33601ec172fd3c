"""Migrations build exactly the models' schema on both databases; the SDL file is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

import boxoffice.models
from boxoffice.runtime import Runtime
from boxoffice.schema import build_schema

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
