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

from boxoffice.backends.seat_ledger import LedgerNotLoaded
from boxoffice.clock import next_start, utcnow
from boxoffice.config import Settings
from boxoffice.models.identity import RefreshToken
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services import event_refunds, orders, payments, sales_stats, waitlist_offers
from boxoffice.services.catalog_statuses import refresh_statuses
from boxoffice.services.coupon_issuing import issue_consumer
from boxoffice.services.notifications import notification_consumer
from boxoffice.services.order_completion import complete_due_orders
from boxoffice.services.outbox import Consumer, dispatch_once, oldest_pending
from boxoffice.services.queue_admission import AdmissionTicker, TickReport
from boxoffice.services.queue_events import QueueCatalog
from boxoffice.services.queue_notices import record_admissions
from boxoffice.services.refund_processing import late_payment_consumer, retry_due_refunds
from boxoffice.services.ticket_issuance import issuance_consumer
from boxoffice.services.webhook_delivery import fanout_consumer, sender_for

log = logging.getLogger("boxoffice.jobs")


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    interval_seconds: float
    run: Callable[[Runtime], Awaitable[object]]
    stop: Callable[[Runtime], Awaitable[None]] | None = None  # on shutdown, if it left tasks
    interval_for: Callable[[Settings], float] | None = None  # a configured interval instead

    def every(self, settings: Settings) -> float:
        return self.interval_for(settings) if self.interval_for else self.interval_seconds


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


async def expire_holds(rt: Runtime) -> int:
    """Release lapsed holds of every session that has some (holds also lapse lazily on the
    next operation of their session; this makes the seats reappear without one)."""
    ledger = rt.backends.ledger
    now_ms = int(utcnow().timestamp() * 1000)
    released = 0
    for session_id in await ledger.due_sessions(now_ms=now_ms):
        try:
            released += len(await ledger.expire(session_id, now_ms=now_ms))
        except LedgerNotLoaded:
            continue
    return released


def outbox_job(consumer: Consumer, interval_seconds: float = 0.5) -> PeriodicJob:
    """Deliver the outbox to ``consumer`` (batches until it runs dry, then waits)."""

    async def run(rt: Runtime) -> int:
        handled = 0
        while batch := await dispatch_once(rt, consumer):
            handled += batch
            if batch < consumer.batch_size:
                break
        return handled

    return PeriodicJob(f"outbox:{consumer.name}", interval_seconds, run)


async def send_webhooks(rt: Runtime) -> int:
    """Start sending due webhook deliveries (one task per endpoint; they outlive the tick)."""
    return await sender_for(rt).tick()


async def stop_webhooks(rt: Runtime) -> None:
    await sender_for(rt).close()


async def _announce_sale(rt: Runtime, event: OutboxEvent) -> None:
    await sales_stats.announce_sale(rt.backends.broker, event)


CONSUMERS: list[Consumer] = [  # each feature registers its outbox consumer here
    issuance_consumer(),
    notification_consumer(),
    fanout_consumer(),
    Consumer("sales-dashboard", _announce_sale, topics=sales_stats.SALES_TOPICS, max_attempts=3),
    issue_consumer(),
    late_payment_consumer(),
    event_refunds.event_refunds_consumer(),
    waitlist_offers.fulfilment_consumer(),
]


async def expire_orders(rt: Runtime) -> int:
    """Expire unpaid orders past their payment window (seats, capacity, coupons go back)."""
    expired = await orders.expire_due_orders(rt.order_deps)
    rt.metrics.count("order", "expired", expired)
    return expired


async def complete_orders(rt: Runtime) -> int:
    """Paid orders whose session ended ``BOXOFFICE_ORDER_COMPLETE_AFTER_DAYS`` ago become
    COMPLETED."""
    completed = await complete_due_orders(
        rt.order_deps, after=timedelta(days=rt.settings.order_complete_after_days)
    )
    rt.metrics.count("order", "completed", completed)
    return completed


async def retry_refunds(rt: Runtime) -> int:
    """Try approved refunds that did not go through again (with backoff), return seats a
    dead process left behind, and finish the cancelled events' runs they belong to."""
    processed = await retry_due_refunds(rt.refund_deps)
    for run_id in sorted({r.run_id for r in processed if r.run_id}):
        await event_refunds.run_event_refunds(rt.refund_deps, run_id)
    return len(processed)


async def expire_waitlist_offers(rt: Runtime) -> int:
    """Waitlist offers past their time pass to the next people."""
    return await waitlist_offers.expire_offers(rt.order_deps)


async def measure_outbox_lag(rt: Runtime) -> None:
    """``boxoffice_outbox_lag_seconds`` per consumer: how old its oldest unfinished event is."""
    now = utcnow()
    for consumer in CONSUMERS:
        oldest = await oldest_pending(rt, consumer)
        rt.metrics.outbox_lag.labels(consumer.name).set(
            0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        )


async def query_payments(rt: Runtime) -> int:
    """Ask providers about payments whose callback never came."""
    return await payments.query_stale_payments(rt.payment_deps)


def queue_ticker(rt: Runtime) -> tuple[AdmissionTicker, QueueCatalog]:
    """The process's admission ticker over the catalog (kept on the runtime: it carries
    fractions of admissions from tick to tick)."""
    kept = rt.extras.get("queue_ticker")
    if isinstance(kept, tuple):
        return kept
    catalog = QueueCatalog(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        default_rate=rt.settings.queue_admit_per_second,
    )
    ticker = AdmissionTicker(
        room=rt.backends.waiting_room,
        broker=rt.backends.broker,
        leases=rt.backends.leases,
        schedules=catalog,
        owner=rt.instance_id,
        tick_seconds=rt.settings.queue_tick_seconds,
        admission_window_seconds=rt.settings.queue_admission_window_seconds,
    )
    rt.extras["queue_ticker"] = (ticker, catalog)
    return ticker, catalog


def measure_queues(rt: Runtime, reports: list[TickReport]) -> None:
    """``boxoffice_queue_waiting`` and ``boxoffice_queue_admitted_total`` per event ticked;
    the waiting gauge of an event no longer ticked is dropped."""
    ticked = {report.event_id for report in reports}
    for report in reports:
        rt.metrics.queue_waiting.labels(report.event_id).set(report.waiting)
        if report.admitted:
            rt.metrics.queue_admitted.labels(report.event_id).inc(len(report.admitted))
    gone = rt.extras.get("queue_measured", set()) - ticked
    for event_id in gone:
        with contextlib.suppress(KeyError):
            rt.metrics.queue_waiting.remove(event_id)
    rt.extras["queue_measured"] = ticked


async def admit_queues(rt: Runtime) -> int:
    """One admission tick for every event selling through the waiting room, then a
    ``queue.admitted`` notice for each user it let in; how many were admitted."""
    ticker, catalog = queue_ticker(rt)
    admitted = 0
    reports = await ticker.tick()
    measure_queues(rt, reports)
    for report in reports:
        event = catalog.event(report.event_id)
        admitted += len(report.admitted)
        if event is None or not report.admitted:
            continue
        try:
            await record_admissions(
                rt.db, event=event, report=report, window_seconds=ticker.admission_window_seconds
            )
        except Exception:
            log.exception("could not record the admissions of %s", report.event_id)
    return admitted


JOBS: list[PeriodicJob] = [
    PeriodicJob("purge-refresh-tokens", 3600, purge_refresh_tokens),
    PeriodicJob("outbox-lag", 15.0, measure_outbox_lag),
    PeriodicJob("expire-holds", 1.0, expire_holds),
    PeriodicJob("expire-orders", 2.0, expire_orders),
    PeriodicJob("query-payments", 60.0, query_payments),
    PeriodicJob("complete-orders", 300.0, complete_orders),
    PeriodicJob("retry-refunds", 15.0, retry_refunds),
    PeriodicJob("waitlist-offers", 5.0, expire_waitlist_offers),
    PeriodicJob("catalog-statuses", 30, refresh_catalog_statuses),
    PeriodicJob("webhook-sender", 0.5, send_webhooks, stop=stop_webhooks),
    PeriodicJob(
        "queue-admission",
        1.0,
        admit_queues,
        interval_for=lambda settings: settings.queue_tick_seconds,
    ),
]


def all_jobs() -> list[PeriodicJob]:
    return [*JOBS, *(outbox_job(c) for c in CONSUMERS)]


class JobRunner:
    """Runs each job every ``interval`` while this process holds the job's lease.

    A lease lasts three intervals (at least ``min_lease_seconds``) and is renewed every
    interval, and every third of its length while a run takes longer, so a slow run keeps it;
    a run whose lease was taken over meanwhile is cancelled (its transaction rolls back; the
    jobs are idempotent). A killed process renews nothing: another one takes over once its
    lease lapses.
    """

    def __init__(
        self,
        rt: Runtime,
        jobs: list[PeriodicJob] | None = None,
        *,
        owner: str | None = None,
        min_lease_seconds: float = 5.0,
    ) -> None:
        self.rt = rt
        self.jobs = list(all_jobs() if jobs is None else jobs)
        self.owner = owner or rt.instance_id
        self.min_lease_seconds = min_lease_seconds
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
            if job.stop is not None:
                with contextlib.suppress(Exception):
                    await job.stop(self.rt)
        for job in self.jobs:
            with contextlib.suppress(Exception):
                await self.rt.backends.leases.release(f"job:{job.name}", self.owner)
        self._tasks.clear()

    async def _loop(self, job: PeriodicJob) -> None:
        lease = f"job:{job.name}"
        interval = job.every(self.rt.settings)
        ttl = max(interval * 3, self.min_lease_seconds)
        leases = self.rt.backends.leases
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                if await leases.acquire(lease, self.owner, ttl_seconds=ttl):
                    await self._run_holding(job, lease, ttl)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed", job.name)
            await asyncio.sleep(next_start(started, interval, loop.time()))

    async def _run_holding(self, job: PeriodicJob, lease: str, ttl: float) -> None:
        """Run the job, renewing its lease every third of ``ttl``; cancel it if the lease
        went to another process."""
        work = asyncio.ensure_future(job.run(self.rt))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=ttl / 3)
                if done:
                    work.result()
                    return
                try:
                    kept = await self.rt.backends.leases.acquire(lease, self.owner, ttl_seconds=ttl)
                except Exception as exc:  # the lease store is down: nobody else can take it
                    log.warning("could not renew the lease of %s: %s", job.name, exc)
                    continue
                if not kept:
                    log.warning("job %s lost its lease to another process; stopping", job.name)
                    return
        finally:
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
