"""Background jobs under leases: a slow run keeps its lease; a worker killed mid-job loses its
leases to the next one, which finishes the outbox, the sweepers and the batch job — each
piece of work done exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.jobs import JobRunner, PeriodicJob
from boxoffice.models.batch_jobs import BatchItemStatus, BatchJob, BatchJobItem, BatchJobStatus
from boxoffice.models.coupons import Coupon, UserCoupon
from boxoffice.models.events import TicketTier
from boxoffice.models.notifications import Notification, NotificationChannel
from boxoffice.models.orders import Order, OrderItem, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.tickets import Ticket
from boxoffice.models.webhooks import WebhookDelivery
from boxoffice.runtime import Runtime
from boxoffice.services.coupon_issuing import issue_coupons
from boxoffice.services.webhooks import create_webhook
from tests.catalog_factories import OPERATOR
from tests.coupon_factories import make_coupon, make_customers
from tests.helpers import make_user
from tests.order_factories import hold_for, on_sale, order_for, pay
from tests.processes import WorkerProcess


async def test_a_run_longer_than_its_lease_keeps_it(rt: Runtime):
    # given two runners (two processes) of a job whose run outlasts its lease several times
    running = 0
    overlaps = 0
    runs: list[str] = []

    def job_of(owner: str) -> PeriodicJob:
        async def run(_rt: Runtime) -> None:
            nonlocal running, overlaps
            running += 1
            overlaps = max(overlaps, running)
            runs.append(owner)
            try:
                await asyncio.sleep(1.2)
            finally:
                running -= 1

        return PeriodicJob("slow", 0.05, run)

    first = JobRunner(rt, [job_of("first")], owner="first", min_lease_seconds=0.3)
    second = JobRunner(rt, [job_of("second")], owner="second", min_lease_seconds=0.3)
    # when both run for a while
    first.start()
    await asyncio.sleep(0.1)
    second.start()
    await asyncio.sleep(2.0)
    await first.stop()
    await second.stop()
    # then the job never ran in both at once, and the first kept it while it was running
    assert overlaps == 1
    assert runs[0] == "first" and runs[:2] == ["first", "first"]


async def test_a_lease_taken_over_stops_the_run(rt: Runtime):
    # given a run in progress whose lease another process takes (e.g. it lapsed in a pause)
    finished = False

    async def run(_rt: Runtime) -> None:
        nonlocal finished
        await asyncio.sleep(1.0)
        finished = True

    runner = JobRunner(rt, [PeriodicJob("paused", 0.1, run)], owner="me", min_lease_seconds=0.3)
    runner.start()
    leases = rt.backends.leases
    for _ in range(100):
        if await leases.holder("job:paused") == "me":
            break
        await asyncio.sleep(0.01)
    await leases.release("job:paused", "me")
    assert await leases.acquire("job:paused", "thief", ttl_seconds=10)
    # when the runner next renews, then it stops the run instead of finishing it twice
    await asyncio.sleep(1.3)
    await runner.stop()
    assert not finished
    assert await leases.holder("job:paused") == "thief"


async def wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def count(rt: Runtime, query) -> int:  # type: ignore[no-untyped-def]
    async with rt.db.read() as session:
        return int((await session.exec(query)).one())


@pytest.mark.parametrize("backend", ["pg_redis"])
async def test_a_worker_killed_mid_job_leaves_nothing_undone_or_done_twice(
    rt: Runtime, tmp_path: Path
):
    # given work waiting for the background jobs: 12 paid orders (tickets, notifications and
    # webhooks to issue), 8 unpaid orders past their payment window, 4 holds about to lapse,
    # and a coupon to issue to 150 customers
    sale = await on_sale(rt, ga_capacity=40)
    await create_webhook(
        db=rt.db,
        viewer=OPERATOR,
        url="http://127.0.0.1:9/hooks",
        events=["ticket.issued", "order.expired"],
        tenant_id=sale.tenant.id,
        allow_private_addresses=True,
    )
    buyers = [await make_user(rt, f"buyer{i}@example.com") for i in range(24)]
    paid = [
        await pay(rt, u, await order_for(rt, u, await hold_for(rt, u, sale.session, seat_ids=[s])))
        for u, s in zip(buyers[:12], sale.seat_ids[:12], strict=True)
    ]
    unpaid = [
        await order_for(rt, u, await hold_for(rt, u, sale.session, tier_id=sale.ga.id, quantity=2))
        for u in buyers[12:20]
    ]
    async with rt.db.write() as session:
        for order in unpaid:
            row = await session.get(Order, order.id)
            assert row is not None
            row.expires_at = utcnow() - timedelta(seconds=1)
            session.add(row)
    for u, s in zip(buyers[20:], sale.seat_ids[12:16], strict=True):
        await hold_for(rt, u, sale.session, seat_ids=[s], ttl_seconds=1)
    coupon = await make_coupon(rt, total_quantity=500)
    customers = await make_customers(rt, 150)
    job = await issue_coupons(
        db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, user_ids=[c.id for c in customers]
    )
    settled = (
        select(func.count())
        .select_from(BatchJobItem)
        .where(BatchJobItem.job_id == job.id, BatchJobItem.status != BatchItemStatus.PENDING)
    )
    # when a worker is killed while the batch job is under way
    first = WorkerProcess(rt.settings, tmp_path, name="first")
    second = WorkerProcess(rt.settings, tmp_path, name="second")
    first.start()
    try:
        await wait_until(lambda: _at_least(rt, settled, 10), 60, "the batch job to start")
        first.kill()
        done_before = await count(rt, settled)
        assert done_before < 150, "the worker finished before it was killed"
        # its leases outlive it; a new worker takes them over once they lapse
        lease = "job:outbox:coupon-issuer"
        assert await rt.backends.leases.holder(lease) == first.instance_id
        second.start()
        await wait_until(lambda: _job_completed(rt, job.id), 120, "the batch job to complete")
        assert await rt.backends.leases.holder(lease) == second.instance_id
        await wait_until(lambda: _all_notified(rt), 120, "every notification")
        await wait_until(lambda: _orders_settled(rt, unpaid), 60, "the unpaid orders to expire")
        await wait_until(lambda: _fanned_out(rt), 60, "the webhook fan-out")
    finally:
        first.stop()
        second.stop()
    # then every piece of work was done exactly once:
    async with rt.db.read() as session:
        events = list((await session.exec(select(OutboxEvent))).all())
        tickets = list((await session.exec(select(Ticket))).all())
        notes = list((await session.exec(select(Notification))).all())
        granted = list(
            (await session.exec(select(UserCoupon).where(UserCoupon.coupon_id == coupon.id))).all()
        )
        finished = await session.get(BatchJob, job.id)
        stock = await session.get(Coupon, coupon.id)
        ga = await session.get(TicketTier, sale.ga.id)
        statuses = {
            o.id: o.status
            for o in (
                await session.exec(select(Order).where(col(Order.id).in_([o.id for o in unpaid])))
            ).all()
        }
        deliveries = list((await session.exec(select(WebhookDelivery))).all())
        paid_items = (
            await session.exec(
                select(OrderItem.id).where(col(OrderItem.order_id).in_([o.id for o in paid]))
            )
        ).all()
    topics = Counter(e.topic for e in events)
    # one ticket per paid item, and one ticket.issued event per ticket
    assert sorted(t.order_item_id for t in tickets) == sorted(paid_items)
    assert topics["ticket.issued"] == len(tickets) == 12
    # each customer got the coupon once, counted once
    assert sorted(g.user_id for g in granted) == sorted(c.id for c in customers)
    assert finished is not None and finished.status is BatchJobStatus.COMPLETED
    assert (finished.succeeded, finished.failed) == (150, 0)
    assert stock is not None and stock.claimed == 150
    assert topics["coupon.issued"] == 150
    # each unpaid order expired once, its capacity given back once
    assert set(statuses.values()) == {OrderStatus.EXPIRED}
    assert topics["order.expired"] == 8
    assert ga is not None and ga.reserved == 0
    # one notification per (event, channel, person), for every event that notifies someone
    keys = Counter((n.event_id, n.channel, n.user_id) for n in notes)
    assert max(keys.values()) == 1
    in_app = {n.event_id for n in notes if n.channel is NotificationChannel.IN_APP}
    notified = {e.event_id for e in events if e.topic in _NOTIFIED}
    assert in_app == notified
    # one webhook delivery per subscribed event
    hooked = sorted(e.event_id for e in events if e.topic in ("ticket.issued", "order.expired"))
    assert sorted(d.event_id for d in deliveries) == hooked
    # and the lapsed holds went back to the seat map
    counts = await rt.backends.ledger.counts(sale.session.id)
    assert (counts[sale.seated.id].sold, counts[sale.seated.id].held) == (12, 0)


_NOTIFIED = {"order.paid", "ticket.issued", "order.expired", "coupon.issued"}


async def _at_least(rt: Runtime, query, n: int) -> bool:  # type: ignore[no-untyped-def]
    return await count(rt, query) >= n


async def _job_completed(rt: Runtime, job_id: str) -> bool:
    async with rt.db.read() as session:
        job = await session.get(BatchJob, job_id)
    return job is not None and job.status is BatchJobStatus.COMPLETED


async def _all_notified(rt: Runtime) -> bool:
    async with rt.db.read() as session:
        wanted = set(
            (
                await session.exec(
                    select(OutboxEvent.event_id).where(col(OutboxEvent.topic).in_(_NOTIFIED))
                )
            ).all()
        )
        got = set(
            (
                await session.exec(
                    select(Notification.event_id).where(
                        Notification.channel == NotificationChannel.IN_APP
                    )
                )
            ).all()
        )
    return bool(wanted) and wanted <= got


async def _orders_settled(rt: Runtime, orders: list[Order]) -> bool:
    async with rt.db.read() as session:
        rows = (
            await session.exec(select(Order).where(col(Order.id).in_([o.id for o in orders])))
        ).all()
    return all(o.status is OrderStatus.EXPIRED for o in rows)


async def _fanned_out(rt: Runtime) -> bool:
    async with rt.db.read() as session:
        wanted = (
            await session.exec(
                select(func.count())
                .select_from(OutboxEvent)
                .where(col(OutboxEvent.topic).in_(("ticket.issued", "order.expired")))
            )
        ).one()
        got = (await session.exec(select(func.count()).select_from(WebhookDelivery))).one()
    return bool(wanted) and got >= wanted
