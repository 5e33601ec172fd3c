"""The one place the service reads the time, always timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def next_start(started: float, interval: float, now: float) -> float:
    """Seconds to wait before the next run of a job that started at ``started``: runs begin
    ``interval`` apart (start to start, so a job's rate does not drift by its own run time,
    which matters for the admission ticker's admissions per second), but a run that overran
    leaves a tenth of the interval before the next one."""
    return max(started + interval - now, interval / 10)
