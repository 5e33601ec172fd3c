"""Issuing a coupon to many people in the background: through the outbox, with progress and
a result per person, the per-user limit respected across jobs, safe to run again or twice at
once, and a ``coupon.issued`` notification per person."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import func, select

from boxoffice.clock import utcnow
from boxoffice.errors import BadUserInput, CouponUnavailable, NotFound
from boxoffice.models.batch_jobs import BatchItemStatus, BatchJob, BatchJobStatus
from boxoffice.models.coupons import Coupon, CouponSource, CouponStatus, UserCoupon
from boxoffice.models.notifications import Notification
from boxoffice.runtime import Runtime
from boxoffice.services import batch_jobs, coupons
from boxoffice.services.coupon_issuing import (
    MAX_USERS_PER_JOB,
    issue_consumer,
    issue_coupons,
    run_issue_job,
)
from boxoffice.services.notifications import notification_consumer
from boxoffice.services.outbox import dispatch_once
from tests.catalog_factories import OPERATOR
from tests.coupon_factories import claimed, make_coupon, make_customers, organizer_of
from tests.helpers import make_tenant


async def job_row(rt: Runtime, job_id: str) -> BatchJob:
    async with rt.db.read() as session:
        job = await session.get(BatchJob, job_id)
    assert job is not None
    return job


async def results(rt: Runtime, job_id: str) -> list[tuple[str, str, str | None]]:
    items = await batch_jobs.job_items(db=rt.db, job_id=job_id, first=1000)
    return [(i.user_id, i.status.value, i.reason) for i in items]


async def holdings(rt: Runtime, coupon_id: str) -> dict[str, int]:
    async with rt.db.read() as session:
        rows = (
            await session.exec(
                select(UserCoupon.user_id, func.count())
                .where(UserCoupon.coupon_id == coupon_id)
                .group_by(UserCoupon.user_id)  # type: ignore[arg-type]
            )
        ).all()
    return dict(rows)


async def test_a_job_reports_progress_and_a_result_per_person(rt: Runtime):
    # given 4 coupons, one already claimed, and a list with a duplicate and an unknown id
    coupon = await make_coupon(rt, total_quantity=4)
    a, b, c, holder, d = await make_customers(rt, 5)
    await claimed(rt, holder, coupon)
    given = [a.id, b.id, a.id, c.id, holder.id, "ghost", d.id]
    # when staff issue it
    job = await issue_coupons(db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=given)
    # then the job waits for the worker, counting each person once
    assert (job.status, job.total, job.succeeded, job.failed) == (BatchJobStatus.PENDING, 6, 0, 0)
    # when the worker settles two people and stops (as if it died)
    assert await run_issue_job(rt.db, job.id, budget=2) is False
    partway = await job_row(rt, job.id)
    assert (partway.status, partway.succeeded, partway.failed) == (BatchJobStatus.RUNNING, 2, 0)
    # and the outbox consumer then runs the job
    assert await dispatch_once(rt, issue_consumer()) == 1
    # then everyone has a result, in the order given
    done = await job_row(rt, job.id)
    assert (done.status, done.succeeded, done.failed) == (BatchJobStatus.COMPLETED, 3, 3)
    assert done.finished_at is not None
    assert await results(rt, job.id) == [
        (a.id, "SUCCEEDED", None),
        (b.id, "SUCCEEDED", None),
        (c.id, "SUCCEEDED", None),
        (holder.id, "FAILED", "ALREADY_CLAIMED"),
        ("ghost", "FAILED", "USER_NOT_FOUND"),
        (d.id, "FAILED", "SOLD_OUT"),
    ]
    assert await holdings(rt, coupon.id) == {a.id: 1, b.id: 1, c.id: 1, holder.id: 1}
    async with rt.db.read() as session:
        issued = (await session.exec(select(UserCoupon).where(UserCoupon.user_id == a.id))).one()
        stock = await session.get(Coupon, coupon.id)
    assert (issued.source, issued.batch_job_id) == (CouponSource.ISSUE, job.id)
    assert stock is not None
    assert stock.claimed == 4
    # and running it again changes nothing
    assert await run_issue_job(rt.db, job.id) is True
    assert (await job_row(rt, job.id)).succeeded == 3
    assert await holdings(rt, coupon.id) == {a.id: 1, b.id: 1, c.id: 1, holder.id: 1}


async def test_two_workers_on_one_job_issue_once_per_person(rt: Runtime):
    # given a job for 40 people
    coupon = await make_coupon(rt, total_quantity=100)
    people = await make_customers(rt, 40)
    job = await issue_coupons(
        db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=[p.id for p in people]
    )
    # when two workers run it at the same time
    assert await asyncio.gather(run_issue_job(rt.db, job.id), run_issue_job(rt.db, job.id)) == [
        True,
        True,
    ]
    # then each person got exactly one, and the counts agree
    assert await holdings(rt, coupon.id) == {p.id: 1 for p in people}
    done = await job_row(rt, job.id)
    assert (done.status, done.succeeded, done.failed) == (BatchJobStatus.COMPLETED, 40, 0)
    async with rt.db.read() as session:
        stock = await session.get(Coupon, coupon.id)
    assert stock is not None
    assert stock.claimed == 40


async def test_issuing_twice_to_the_same_people_respects_the_per_user_limit(rt: Runtime):
    # given a coupon two per person, issued three times to the same two people
    coupon = await make_coupon(rt, total_quantity=100, per_user_limit=2)
    people = [p.id for p in await make_customers(rt, 2)]
    outcomes = []
    for _ in range(3):
        job = await issue_coupons(db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=people)
        await run_issue_job(rt.db, job.id)
        outcomes.append([(status, reason) for _, status, reason in await results(rt, job.id)])
    # then the third round is refused for both
    assert outcomes[0] == outcomes[1] == [("SUCCEEDED", None)] * 2
    assert outcomes[2] == [("FAILED", "ALREADY_CLAIMED")] * 2
    assert await holdings(rt, coupon.id) == {p: 2 for p in people}


async def test_issued_people_are_notified(rt: Runtime):
    coupon = await make_coupon(rt, name="新年礼券")
    people = await make_customers(rt, 3)
    job = await issue_coupons(
        db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=[p.id for p in people]
    )
    await run_issue_job(rt.db, job.id)
    await dispatch_once(rt, notification_consumer())
    async with rt.db.read() as session:
        told = (
            await session.exec(select(Notification).where(Notification.topic == "coupon.issued"))
        ).all()
    assert sorted(n.user_id for n in told) == sorted(p.id for p in people)
    assert all("新年礼券" in n.body for n in told)


async def test_staff_may_issue_before_the_window_opens_but_not_after_the_end(rt: Runtime):
    early = await make_coupon(rt, valid_from=utcnow() + timedelta(days=3))
    (person,) = await make_customers(rt, 1)
    job = await issue_coupons(db=rt.db, viewer=OPERATOR, coupon_id=early.id, user_ids=[person.id])
    await run_issue_job(rt.db, job.id)
    assert (await job_row(rt, job.id)).succeeded == 1
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=early.id, status=CouponStatus.ENDED
    )
    with pytest.raises(CouponUnavailable) as ended:
        await issue_coupons(db=rt.db, viewer=OPERATOR, coupon_id=early.id, user_ids=[person.id])
    assert ended.value.extensions()["reason"] == "ENDED"


async def test_a_paused_coupon_fails_each_person_with_paused(rt: Runtime):
    coupon = await make_coupon(rt)
    people = [p.id for p in await make_customers(rt, 2)]
    job = await issue_coupons(db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=people)
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, status=CouponStatus.PAUSED
    )
    await run_issue_job(rt.db, job.id)
    assert [r[2] for r in await results(rt, job.id)] == ["PAUSED", "PAUSED"]


async def test_the_list_of_people_is_validated(rt: Runtime):
    coupon = await make_coupon(rt)
    for user_ids in ([], ["  "], ["x" * 65], [str(i) for i in range(MAX_USERS_PER_JOB + 1)]):
        with pytest.raises(BadUserInput) as bad:
            await issue_coupons(db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=user_ids)
        assert bad.value.field == "userIds"


async def test_jobs_are_scoped_like_their_coupon(rt: Runtime):
    tenant = await make_tenant(rt, "Issuer")
    organizer = organizer_of(tenant)
    coupon = await make_coupon(rt, by=organizer)
    (person,) = await make_customers(rt, 1)
    job = await issue_coupons(db=rt.db, viewer=organizer, coupon_id=coupon.id, user_ids=[person.id])
    assert (await batch_jobs.get_batch_job(db=rt.db, viewer=organizer, job_id=job.id)).id == job.id
    stranger = organizer_of(await make_tenant(rt, "Stranger"), user_id="stranger")
    with pytest.raises(NotFound):
        await issue_coupons(db=rt.db, viewer=stranger, coupon_id=coupon.id, user_ids=[person.id])
    with pytest.raises(NotFound):
        await batch_jobs.get_batch_job(db=rt.db, viewer=stranger, job_id=job.id)
    assert (await batch_jobs.get_batch_job(db=rt.db, viewer=OPERATOR, job_id=job.id)).id == job.id
    settled = await batch_jobs.job_items(db=rt.db, job_id=job.id, settled_only=True)
    assert settled == []
    await run_issue_job(rt.db, job.id)
    settled = await batch_jobs.job_items(db=rt.db, job_id=job.id, settled_only=True)
    assert [i.status for i in settled] == [BatchItemStatus.SUCCEEDED]
