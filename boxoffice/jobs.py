"""Background jobs that must run in exactly one process at a time.

Each periodic job runs only while its process holds the job's lease (Redis ``SET NX PX`` across
processes, or in-process). ``boxoffice serve`` runs them unless
``BOXOFFICE_RUN_BACKGROUND_JOBS=false``; ``boxoffice worker`` runs only them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, delete

from boxoffice.clock import utcnow
from boxoffice.models.identity import RefreshToken
from boxoffice.runtime import Runtime
from boxoffice.services.catalog_statuses import refresh_statuses

log = logging.getLogger("boxoffice.jobs")


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: Callable[[Runtime], Awaitable[object]]


async def purge_refresh_tokens(rt: Runtime) -> int:
    """Delete refresh tokens that expired more than a day ago."""
    cutoff = utcnow() - timedelta(days=1)
    async with rt.db.write() as session:
        result = await session.exec(
            delete(RefreshToken).where(col(RefreshToken.expires_at) < cutoff)
        )
    return int(result.rowcount or 0)


async def refresh_catalog_statuses(rt: Runtime) -> int:
    """Keep the stored event and session statuses current (reads already derive them
    exactly); drop the cached home pages when something changed."""
    changed = await refresh_statuses(rt.db)
    if changed:
        await rt.catalog_cache.invalidate(home=True)
    return changed


JOBS: list[PeriodicJob] = [
    PeriodicJob("purge-refresh-tokens", 3600, purge_refresh_tokens),
    PeriodicJob("catalog-statuses", 30, refresh_catalog_statuses),
]


class JobRunner:
    def __init__(self, rt: Runtime, jobs: list[PeriodicJob] | None = None) -> None:
        self.rt = rt
        self.jobs = list(JOBS if jobs is None else jobs)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for job in self.jobs:
            self._tasks.append(asyncio.create_task(self._loop(job), name=f"job:{job.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for job in self.jobs:
            with contextlib.suppress(Exception):
                await self.rt.backends.leases.release(f"job:{job.name}", self.rt.instance_id)
        self._tasks.clear()

    async def _loop(self, job: PeriodicJob) -> None:
        lease = f"job:{job.name}"
        ttl = max(job.interval_seconds * 3, 5.0)
        while True:
            try:
                if await self.rt.backends.leases.acquire(
                    lease, self.rt.instance_id, ttl_seconds=ttl
                ):
                    await job.run(self.rt)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed", job.name)
            await asyncio.sleep(job.interval_seconds)
