"""The console script, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from boxoffice.cli import migrate


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    migrate(url)
    return {
        **os.environ,
        "BOXOFFICE_DATABASE_URL": url,
        "BOXOFFICE_DATA_DIR": str(tmp_path / "data"),
        "BOXOFFICE_ARGON2_MEMORY_KIB": "1024",
        "BOXOFFICE_ARGON2_TIME_COST": "1",
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "boxoffice", *args], capture_output=True, text=True, env=env
    )


def test_create_user_prints_the_id_last(cli_env: dict[str, str]):
    done = run(
        cli_env,
        "create-user",
        "--email",
        "ops@example.com",
        "--password",
        "s3cret-pass",
        "--role",
        "OPERATOR",
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert len(last) == 26
    again = run(
        cli_env,
        "create-user",
        "--email",
        "ops@example.com",
        "--password",
        "s3cret-pass",
        "--role",
        "OPERATOR",
    )
    assert again.returncode == 1
    assert "ALREADY_EXISTS" in again.stderr


def test_create_organizer_needs_a_tenant(cli_env: dict[str, str]):
    done = run(
        cli_env,
        "create-user",
        "--email",
        "o@example.com",
        "--password",
        "s3cret-pass",
        "--role",
        "ORGANIZER",
    )
    assert done.returncode == 1
    assert "BAD_USER_INPUT" in done.stderr


def test_seed_demo_is_idempotent(cli_env: dict[str, str]):
    first = run(cli_env, "seed-demo")
    assert first.returncode == 0, first.stderr
    second = run(cli_env, "seed-demo")
    assert second.returncode == 0, second.stderr
    assert first.stdout == second.stdout
    assert "operator@demo.boxoffice.dev" in first.stdout


def test_serve_refuses_many_workers_without_redis(cli_env: dict[str, str]):
    done = run(cli_env, "serve", "--workers", "2")
    assert done.returncode == 2
    assert "BOXOFFICE_REDIS_URL" in done.stderr
