"""The garbage-collector settings of ``boxoffice serve`` (``boxoffice.gc_tuning``)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from boxoffice import cli, gc_tuning
from boxoffice.gc_tuning import THRESHOLDS, after_wave, tune_gc


@pytest.fixture
def restored_gc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put the test process's collector back as it was."""
    thresholds = gc.get_threshold()
    monkeypatch.setattr(gc_tuning, "_tuned", gc_tuning._tuned)
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


@pytest.fixture
def collections_seen(restored_gc: None) -> Iterator[list[int]]:
    """The generations collected while the test runs, automatic collections off (so only
    an explicit ``gc.collect`` shows)."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.disable()
    gc.callbacks.append(record)
    yield seen
    gc.callbacks.remove(record)
    gc.enable()


async def test_a_wave_of_wakes_gets_its_young_collection_once_it_settled(
    collections_seen: list[int], monkeypatch: pytest.MonkeyPatch
):
    # given a tuned process
    monkeypatch.setattr(gc_tuning, "WAVE_SETTLE_SECONDS", 0.05)
    monkeypatch.setattr(gc_tuning, "_last_wave_collection", float("-inf"))
    tune_gc()
    collections_seen.clear()
    # when one message wakes a wave, and another right after it
    after_wave(gc_tuning.WAVE)
    after_wave(gc_tuning.WAVE * 3)
    # then nothing is collected at once (the woken have not run yet) ...
    assert collections_seen == []
    # ... and one young collection follows once they settled
    await asyncio.sleep(0.2)
    assert collections_seen == [0]
    # when a later message wakes a few, then nothing more is collected
    after_wave(gc_tuning.WAVE - 1)
    await asyncio.sleep(0.2)
    assert collections_seen == [0]
    # when another wave comes within the minimum interval, then it is left to the count
    after_wave(gc_tuning.WAVE)
    await asyncio.sleep(0.2)
    assert collections_seen == [0]
    # when one comes after it, then it is collected
    monkeypatch.setattr(gc_tuning, "WAVE_MIN_INTERVAL_SECONDS", 0.0)
    after_wave(gc_tuning.WAVE)
    await asyncio.sleep(0.2)
    assert collections_seen == [0, 0]


async def test_waves_collect_nothing_in_an_untuned_process(
    collections_seen: list[int], monkeypatch: pytest.MonkeyPatch
):
    # given a process that was not tuned (a test, a worker): its collector is CPython's own
    monkeypatch.setattr(gc_tuning, "_tuned", False)
    monkeypatch.setattr(gc_tuning, "WAVE_SETTLE_SECONDS", 0.05)
    after_wave(gc_tuning.WAVE * 10)
    await asyncio.sleep(0.2)
    assert collections_seen == []
