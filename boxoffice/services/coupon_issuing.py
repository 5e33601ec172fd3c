"""Issuing a coupon to a list of people: a background job through the outbox.

``issue_coupons`` writes the job, one PENDING item per person (duplicates dropped, order
kept) and a ``coupon.issue_requested`` outbox event, in one transaction, and returns at once.
The ``coupon-issuer`` outbox consumer runs the job (``run_issue_job``): each person in their
own transaction, which settles the item (``SELECT ... FOR UPDATE``; skipped unless still
PENDING), grants the coupon in a savepoint (``coupon_claims.grant``: stock and the per-user
limit hold exactly as for claims, so a second job for the same person answers
ALREADY_CLAIMED once the limit is reached), counts the result on the job and emits
``coupon.issued`` for the person's notification. A worker that dies mid-job, a retried
outbox delivery or two workers at once therefore never issue to one person twice for one
job; the next run carries on with the items still PENDING.

Per-person reasons: USER_NOT_FOUND, and the claim reasons SOLD_OUT, ALREADY_CLAIMED,
ENDED, PAUSED. Issuing before ``validFrom`` is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import col, func, insert, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, CouponUnavailable
from boxoffice.ids import new_id
from boxoffice.models.batch_jobs import (
    BatchItemStatus,
    BatchJob,
    BatchJobItem,
    BatchJobKind,
    BatchJobStatus,
)
from boxoffice.models.coupons import Coupon, CouponSource, UserCoupon
from boxoffice.models.identity import User
from boxoffice.models.outbox import OutboxEvent
from boxoffice.services import audit, outbox
from boxoffice.services.batch_jobs import pending_items
from boxoffice.services.coupon_claims import grant, refusal, unavailable
from boxoffice.services.coupons import managed_in
from boxoffice.services.outbox import Consumer
from boxoffice.services.viewer import Viewer

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

ISSUE_TOPIC = "coupon.issue_requested"
ISSUED_TOPIC = "coupon.issued"
CONSUMER_NAME = "coupon-issuer"
MAX_USERS_PER_JOB = 10_000
CHUNK = 100


def _user_ids(values: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for raw in values:
        value = raw.strip()
        if not value or len(value) > 64:
            raise BadUserInput("Every user id must be 1-64 characters.", field="userIds")
        seen.setdefault(value, None)
    if not seen:
        raise BadUserInput("Give at least one user id.", field="userIds")
    if len(seen) > MAX_USERS_PER_JOB:
        raise BadUserInput(f"At most {MAX_USERS_PER_JOB} users per job.", field="userIds")
    return list(seen)


async def issue_coupons(
    *, db: Database, viewer: Viewer, coupon_id: str, user_ids: Sequence[str]
) -> BatchJob:
    """Start issuing the coupon to ``user_ids`` (staff who manage the coupon). Raises
    BAD_USER_INPUT (``userIds``), NOT_FOUND, COUPON_UNAVAILABLE (reason ENDED) when the
    coupon can no longer be issued at all."""
    people = _user_ids(user_ids)
    now = utcnow()
    async with db.write() as session:
        coupon = await managed_in(session, viewer, coupon_id, lock=False)
        if refusal(coupon, now, early=True) == "ENDED":
            raise unavailable("ENDED")
        job = BatchJob(
            kind=BatchJobKind.COUPON_ISSUE,
            tenant_id=coupon.tenant_id,
            subject_id=coupon.id,
            total=len(people),
            created_by=viewer.user_id,
        )
        session.add(job)
        await session.flush()
        await session.exec(
            insert(BatchJobItem),
            params=[
                {
                    "id": new_id(),
                    "job_id": job.id,
                    "position": position,
                    "user_id": user_id,
                    "status": BatchItemStatus.PENDING,
                }
                for position, user_id in enumerate(people)
            ],
        )
        audit.record(
            session,
            viewer=viewer,
            action="coupon.issue",
            target_type="Coupon",
            target_id=coupon.id,
            tenant_id=coupon.tenant_id,
            after={"batchJobId": job.id, "users": len(people)},
        )
        outbox.emit(
            session,
            topic=ISSUE_TOPIC,
            aggregate_type="BatchJob",
            aggregate_id=job.id,
            tenant_id=coupon.tenant_id,
            payload={"jobId": job.id},
        )
    return job


def issued_resource(user_coupon: UserCoupon, coupon: Coupon) -> dict[str, Any]:
    """The user coupon as the API shows it (the ``coupon.issued`` payload)."""
    return {
        "id": user_coupon.id,
        "status": user_coupon.status.value,
        "name": coupon.name,
        "coupon": {
            "id": coupon.id,
            "name": coupon.name,
            "kind": coupon.kind.value,
            "validFrom": coupon.valid_from.isoformat() if coupon.valid_from else None,
            "validTo": coupon.valid_to.isoformat() if coupon.valid_to else None,
        },
        "claimedAt": user_coupon.claimed_at.isoformat(),
    }


async def _issue_one(db: Database, job: BatchJob, item_id: str) -> None:
    """Settle one item in its own transaction (run again after a deadlock: the item's
    status, read under a row lock, makes a second run that finds it settled a no-op)."""
    now = utcnow()

    async def settle(session: AsyncSession) -> None:
        item = await session.get(
            BatchJobItem, item_id, with_for_update=True, populate_existing=True
        )
        if item is None or item.status is not BatchItemStatus.PENDING:
            return
        coupon = await session.get(Coupon, job.subject_id)
        user = await session.get(User, item.user_id)
        assert coupon is not None
        user_coupon: UserCoupon | None = None
        reason: str | None = "USER_NOT_FOUND"
        if user is not None:
            try:
                async with session.begin_nested():
                    user_coupon = await grant(
                        session,
                        coupon,
                        user.id,
                        now=now,
                        source=CouponSource.ISSUE,
                        batch_job_id=job.id,
                    )
                reason = None
            except CouponUnavailable as exc:
                reason = str(exc.details.get("reason"))
        item.status = BatchItemStatus.FAILED if user_coupon is None else BatchItemStatus.SUCCEEDED
        item.reason, item.processed_at = reason, now
        item.result_id = user_coupon.id if user_coupon else None
        session.add(item)
        counter = col(BatchJob.failed) if user_coupon is None else col(BatchJob.succeeded)
        await session.exec(
            update(BatchJob)
            .where(col(BatchJob.id) == job.id)
            .values({counter: counter + 1, "updated_at": now})
        )
        if user_coupon is not None:
            outbox.emit(
                session,
                topic=ISSUED_TOPIC,
                aggregate_type="UserCoupon",
                aggregate_id=user_coupon.id,
                tenant_id=coupon.tenant_id,
                payload={"resource": issued_resource(user_coupon, coupon), "userId": item.user_id},
            )

    await db.write_retrying(settle, what=f"issue batch item {item_id}")


async def run_issue_job(db: Database, job_id: str, *, budget: int | None = None) -> bool:
    """Settle the job's PENDING items in order, at most ``budget`` of them (all by default).
    Returns True once every item is settled and the job is COMPLETED."""
    now = utcnow()
    async with db.write() as session:
        job = await session.get(BatchJob, job_id, with_for_update=True)
        if job is None or job.status is BatchJobStatus.COMPLETED:
            return True
        if job.status is BatchJobStatus.PENDING:
            job.status, job.started_at, job.updated_at = BatchJobStatus.RUNNING, now, now
            session.add(job)
    done = 0
    while True:
        async with db.read() as session:
            items = await pending_items(session, job_id, limit=CHUNK)
        if not items:
            break
        for item in items:
            if budget is not None and done >= budget:
                return False
            await _issue_one(db, job, item.id)
            done += 1
    return await _complete(db, job_id)


async def _complete(db: Database, job_id: str) -> bool:
    now = utcnow()
    async with db.write() as session:
        pending = (
            await session.exec(
                select(func.count())
                .select_from(BatchJobItem)
                .where(
                    BatchJobItem.job_id == job_id,
                    BatchJobItem.status == BatchItemStatus.PENDING,
                )
            )
        ).one()
        if pending:
            return False
        await session.exec(
            update(BatchJob)
            .where(col(BatchJob.id) == job_id, col(BatchJob.status) != BatchJobStatus.COMPLETED)
            .values(status=BatchJobStatus.COMPLETED, finished_at=now, updated_at=now)
        )
    return True


def issue_consumer() -> Consumer:
    """The outbox consumer that runs issue jobs (a retried delivery resumes the job)."""

    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        job_id = event.payload.get("jobId") if isinstance(event.payload, dict) else None
        if isinstance(job_id, str):
            await run_issue_job(rt.db, job_id)

    return Consumer(CONSUMER_NAME, handle, topics=frozenset({ISSUE_TOPIC}), batch_size=10)
