"""The garbage-collector settings of ``boxoffice serve`` (``boxoffice.gc_tuning``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from boxoffice import cli
from boxoffice.gc_tuning import THRESHOLDS, tune_gc


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Put the test process's collector back as it was."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tuning_freezes_what_exists_and_raises_the_thresholds(restored_gc: None):
    # given a long-lived object made before the tuning
    kept = {"made": "at start-up"}
    # when the process is tuned
    tune_gc()
    # then it is in the permanent generation, and collections come far less often
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # no collection scans it again
    assert gc.get_threshold() == THRESHOLDS
    assert THRESHOLDS[0] > 700  # CPython's default first threshold


def test_serve_runs_the_tuned_app(monkeypatch: pytest.MonkeyPatch):
    # given uvicorn replaced by a recorder
    seen: dict[str, Any] = {}

    def run(app: str, **kwargs: Any) -> None:
        seen.update(app=app, **kwargs)

    monkeypatch.setattr("uvicorn.run", run)
    # when `boxoffice serve` starts
    assert cli.main(["serve", "--port", "0"]) == 0
    # then uvicorn builds every worker's app with the tuning factory
    assert seen["app"] == "boxoffice.app:serve_app"
    assert seen["factory"] is True
