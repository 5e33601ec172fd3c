"""Event view counting off the hot path.

``event(id)`` must not open a write transaction per request, so views are counted in memory
per process and added to ``events.view_count`` in one transaction every few seconds (and when
the process stops). A crash loses at most one interval of views; counts are approximate by
design, never a correctness input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

from sqlalchemy import bindparam, update

from boxoffice.db import Database
from boxoffice.models.events import Event

log = logging.getLogger("boxoffice.view_counts")

FLUSH_INTERVAL_SECONDS = 5.0

_events = Event.__table__  # type: ignore[attr-defined]
_ADD_VIEWS = (
    update(_events)
    .where(_events.c.id == bindparam("event_id"))
    .values(view_count=_events.c.view_count + bindparam("views"))
)


class ViewCounts:
    def __init__(self, db: Database, *, interval_seconds: float = FLUSH_INTERVAL_SECONDS) -> None:
        self._db = db
        self._interval = interval_seconds
        self._pending: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def add(self, event_id: str, views: int = 1) -> None:
        self._pending[event_id] += views

    @property
    def pending(self) -> int:
        return sum(self._pending.values())

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="view-counts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception:
                log.exception("could not flush view counts")

    async def flush(self) -> int:
        """Add the pending views to the database; on failure they stay pending."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, Counter()
        rows = [{"event_id": event_id, "views": n} for event_id, n in sorted(batch.items())]
        try:
            async with self._db.write() as session:
                await session.exec(_ADD_VIEWS, params=rows)
        except BaseException:
            self._pending.update(batch)
            raise
        return sum(batch.values())
