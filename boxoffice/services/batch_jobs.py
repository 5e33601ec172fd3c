"""Reading batch jobs and their per-person results (see ``models.batch_jobs``).

A job belongs to the tenant of what it works on (``tenant_id``), or to the platform: its
organizers, and operators, may read it; anyone else gets NOT_FOUND (FORBIDDEN for roles that
never may).
"""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.db import Database
from boxoffice.errors import NotFound
from boxoffice.models.batch_jobs import BatchItemStatus, BatchJob, BatchJobItem
from boxoffice.models.identity import Role
from boxoffice.services.pagination import page_size
from boxoffice.services.viewer import Viewer

MAX_RESULTS_PAGE = 1000


def _may_read(viewer: Viewer, job: BatchJob) -> bool:
    if viewer.is_operator:
        return True
    return job.tenant_id is not None and viewer.can_staff(job.tenant_id, Role.ORGANIZER)


async def get_batch_job(*, db: Database, viewer: Viewer, job_id: str) -> BatchJob:
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    async with db.read() as session:
        job = await session.get(BatchJob, job_id)
    if job is None or not _may_read(viewer, job):
        raise NotFound("No such batch job.")
    return job


async def pending_items(session: AsyncSession, job_id: str, *, limit: int) -> list[BatchJobItem]:
    rows = await session.exec(
        select(BatchJobItem)
        .where(BatchJobItem.job_id == job_id, BatchJobItem.status == BatchItemStatus.PENDING)
        .order_by(col(BatchJobItem.position))
        .limit(limit)
    )
    return list(rows.all())


async def job_items(
    *,
    db: Database,
    job_id: str,
    first: int | None = None,
    after: int | None = None,
    failed_only: bool = False,
    settled_only: bool = False,
) -> list[BatchJobItem]:
    """A job's items in the order the people were given, from after position ``after``
    (the caller has already checked the job may be read)."""
    size = page_size(first, default=100, maximum=MAX_RESULTS_PAGE)
    query = select(BatchJobItem).where(BatchJobItem.job_id == job_id)
    if after is not None:
        query = query.where(col(BatchJobItem.position) > after)
    if failed_only:
        query = query.where(col(BatchJobItem.status) == BatchItemStatus.FAILED)
    elif settled_only:
        query = query.where(col(BatchJobItem.status) != BatchItemStatus.PENDING)
    async with db.read() as session:
        rows = await session.exec(query.order_by(col(BatchJobItem.position)).limit(size))
        return list(rows.all())
