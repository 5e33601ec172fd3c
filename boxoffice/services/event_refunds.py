"""Refunding a cancelled event: every paid order, in the background, once, with progress.

``cancelEvent`` runs ``schedule_event_refunds`` in its own transaction (an
``on_event_cancelled`` hook): it writes the event's refund run (one per event) and an
``event.refunds_requested`` outbox event, whose consumer runs ``run_event_refunds``.

A run, as often as it is started (it is idempotent): for each order of the event with units
still paid for, make sure one refund covers them — a new one (APPROVED at once, no fee, no
deadline: the organizer cancelled), or the order's open one: a request still awaiting review
is widened to the whole order and approved without fee, one already under way is adopted —
then carries the run's due refunds out (``refund_processing``). Refunds are unique per order
while open, and completed ones leave nothing live to refund, so running twice, or two workers
at once, never refunds an order twice. The run is COMPLETED once no order has anything left
to refund; refunds that did not go through are retried by the refund retry job, which then
finishes the run. A late payment of a cancelled event's order (``order.paid``) starts the
run again.

Progress (``event_refund_progress``): the run's refunds by status and the money returned.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import NotFound
from boxoffice.models.events import Event
from boxoffice.models.identity import Role
from boxoffice.models.orders import ItemStatus, Order, OrderItem, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.refunds import (
    EventRefundRun,
    EventRefundRunStatus,
    Refund,
    RefundSource,
    RefundStatus,
)
from boxoffice.services import events, order_states, outbox
from boxoffice.services.outbox import Consumer
from boxoffice.services.refund_processing import (
    PROCESSABLE,
    RefundDeps,
    emit_refund,
    new_refund_no,
    process_refund,
)
from boxoffice.services.refunds import paid_with
from boxoffice.services.viewer import Viewer

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.refunds")

REQUESTED_TOPIC = "event.refunds_requested"
CONSUMER_NAME = "event-refunds"
REFUNDED_ORDER_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDING,
)
CANCEL_OPINION = "The event was cancelled."
MAX_ROUNDS = 5


@dataclass(frozen=True)
class EventRefundProgress:
    run: EventRefundRun
    counts: dict[RefundStatus, int]
    refunded_minor: int
    currency: str

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def completed(self) -> int:
        return self.counts.get(RefundStatus.COMPLETED, 0)

    @property
    def failed(self) -> int:
        return self.counts.get(RefundStatus.FAILED, 0)

    @property
    def in_progress(self) -> int:
        return self.total - self.completed - self.failed


@events.on_event_cancelled
async def schedule_event_refunds(session: AsyncSession, event: Event, viewer: Viewer) -> None:
    """Start refunding the event's paid orders (in ``cancel_event``'s transaction)."""
    run = EventRefundRun(
        tenant_id=event.tenant_id,
        event_id=event.id,
        reason=event.cancel_reason,
        requested_by=viewer.user_id,
    )
    session.add(run)
    outbox.emit(
        session,
        topic=REQUESTED_TOPIC,
        aggregate_type="EventRefundRun",
        aggregate_id=run.id,
        tenant_id=event.tenant_id,
        payload={"runId": run.id, "eventId": event.id},
    )


async def _live_items(session: AsyncSession, order_id: str) -> list[OrderItem]:
    return list(
        (
            await session.exec(
                select(OrderItem)
                .where(
                    OrderItem.order_id == order_id,
                    col(OrderItem.live).is_(True),
                    OrderItem.status == ItemStatus.ACTIVE,
                )
                .order_by(col(OrderItem.id))
            )
        ).all()
    )


async def _cover_order(db: Database, run: EventRefundRun, order_id: str) -> bool:
    """Make sure one refund of the run covers the order's paid units; True if it made or
    widened one."""
    now = utcnow()
    try:
        async with db.write() as session:
            order = (
                await session.exec(
                    select(Order)
                    .where(Order.id == order_id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).one()
            if order.status not in REFUNDED_ORDER_STATUSES:
                return False
            items = await _live_items(session, order.id)
            open_refund = (
                await session.exec(
                    select(Refund).where(Refund.open_order_id == order.id).with_for_update()
                )
            ).first()
            if open_refund is not None:
                return await _adopt(session, run, open_refund, items, now)
            if not items:
                return False
            payment = await paid_with(session, order.id)
            cost = sum(item.paid_minor for item in items)
            refund = Refund(
                refund_no=new_refund_no(now),
                tenant_id=order.tenant_id,
                order_id=order.id,
                event_id=order.event_id,
                session_id=order.session_id,
                user_id=order.user_id,
                requested_by=run.requested_by,
                source=RefundSource.EVENT_CANCELLED,
                status=RefundStatus.APPROVED,
                reason=run.reason or CANCEL_OPINION,
                opinion=CANCEL_OPINION,
                reviewed_by=run.requested_by,
                reviewed_at=now,
                item_ids=[item.id for item in items],
                cost_minor=cost,
                amount_minor=cost,
                currency=order.currency,
                payment_no=payment.payment_no if payment else None,
                method=payment.channel if payment else None,
                open_order_id=order.id,
                run_id=run.id,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(refund)
            await session.flush()
            order_states.check(order.id, order.status, OrderStatus.REFUNDING)
            order.status, order.updated_at = OrderStatus.REFUNDING, now
            session.add(order)
            await emit_refund(session, "refund.requested", refund)
    except IntegrityError:
        return False  # another worker covered it a moment ago
    return True


async def _adopt(
    session: AsyncSession,
    run: EventRefundRun,
    refund: Refund,
    items: list[OrderItem],
    now: datetime,
) -> bool:
    """An order's open refund joins the run: one awaiting review is widened to the whole
    order, without fee, and approved; one already under way is left as it is."""
    widened = False
    if refund.status is RefundStatus.PENDING:
        cost = sum(item.paid_minor for item in items)
        refund.item_ids = [item.id for item in items]
        refund.cost_minor, refund.fee_minor, refund.amount_minor = cost, 0, cost
        refund.source, refund.status = RefundSource.EVENT_CANCELLED, RefundStatus.APPROVED
        refund.opinion = CANCEL_OPINION
        refund.reviewed_by, refund.reviewed_at = run.requested_by, now
        refund.next_attempt_at = now
        widened = True
    if refund.run_id is None or widened:
        refund.run_id, refund.updated_at = run.id, now
        session.add(refund)
    return widened


async def _orders_to_cover(db: Database, event_id: str) -> list[str]:
    async with db.read() as session:
        return list(
            (
                await session.exec(
                    select(Order.id)
                    .where(
                        Order.event_id == event_id,
                        col(Order.status).in_(REFUNDED_ORDER_STATUSES),
                    )
                    .order_by(col(Order.id))
                )
            ).all()
        )


async def run_event_refunds(deps: RefundDeps, run_id: str) -> bool:
    """Run (or resume) a cancelled event's refunds; True once the run is COMPLETED."""
    db = deps.orders.db
    async with db.read() as session:
        run = await session.get(EventRefundRun, run_id)
    if run is None:
        return True
    for _ in range(MAX_ROUNDS):
        covered = 0
        for order_id in await _orders_to_cover(db, run.event_id):
            covered += await _cover_order(db, run, order_id)
        async with db.read() as session:
            due = (
                await session.exec(
                    select(Refund.id)
                    .where(
                        Refund.run_id == run.id,
                        col(Refund.status).in_(PROCESSABLE),
                        col(Refund.next_attempt_at) <= utcnow(),
                    )
                    .order_by(col(Refund.id))
                )
            ).all()
        for refund_id in due:
            await process_refund(deps, refund_id)
        if not covered:
            break
    return await finish_if_done(db, run.id)


async def finish_if_done(db: Database, run_id: str) -> bool:
    """COMPLETED once none of the event's orders has anything left to refund."""
    async with db.write() as session:
        run = await session.get(EventRefundRun, run_id)
        if run is None or run.status is EventRefundRunStatus.COMPLETED:
            return True
        left = (
            await session.exec(
                select(Order.id)
                .where(
                    Order.event_id == run.event_id,
                    col(Order.status).in_(REFUNDED_ORDER_STATUSES),
                )
                .limit(1)
            )
        ).first()
        if left is not None:
            return False
        now = utcnow()
        run.status, run.finished_at, run.updated_at = EventRefundRunStatus.COMPLETED, now, now
        session.add(run)
    log.info("refunds of cancelled event %s completed", run.event_id)
    return True


async def resume_for_order(deps: RefundDeps, order_id: str) -> bool:
    """A cancelled event's order was paid after its run started (a late payment): run again."""
    db = deps.orders.db
    async with db.read() as session:
        order = await session.get(Order, order_id)
        run = (
            (
                await session.exec(
                    select(EventRefundRun).where(EventRefundRun.event_id == order.event_id)
                )
            ).first()
            if order is not None
            else None
        )
    if run is None:
        return False
    async with db.write() as session:
        await session.exec(
            update(EventRefundRun)
            .where(col(EventRefundRun.id) == run.id)
            .values(status=EventRefundRunStatus.RUNNING, finished_at=None, updated_at=utcnow())
        )
    await run_event_refunds(deps, run.id)
    return True


async def event_refund_progress(
    *, db: Database, viewer: Viewer, event_id: str
) -> EventRefundProgress | None:
    """A cancelled event's refund run, for the tenant's organizers (None: no run)."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    async with db.read() as session:
        event = await session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.", field="eventId")
        try:
            viewer.require_staff(event.tenant_id, Role.ORGANIZER)
        except NotFound as exc:
            raise NotFound("No such event.", field="eventId") from exc
        run = (
            await session.exec(select(EventRefundRun).where(EventRefundRun.event_id == event_id))
        ).first()
        if run is None:
            return None
        refunds = (
            await session.exec(
                select(Refund.status, Refund.amount_minor, Refund.currency).where(
                    Refund.run_id == run.id
                )
            )
        ).all()
    counts: Counter[RefundStatus] = Counter(RefundStatus(status) for status, _, _ in refunds)
    refunded = sum(a for status, a, _ in refunds if status is RefundStatus.COMPLETED)
    currency = refunds[0][2] if refunds else "CNY"
    return EventRefundProgress(run, dict(counts), refunded, currency)


def event_refunds_consumer() -> Consumer:
    """Runs a cancelled event's refunds (``event.refunds_requested``), and again when one of
    its orders is paid late (``order.paid``)."""

    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        payload = event.payload if isinstance(event.payload, dict) else {}
        if event.topic == REQUESTED_TOPIC:
            run_id = payload.get("runId")
            if isinstance(run_id, str):
                await run_event_refunds(rt.refund_deps, run_id)
        else:
            await resume_for_order(rt.refund_deps, event.aggregate_id)

    return Consumer(
        CONSUMER_NAME, handle, topics=frozenset({REQUESTED_TOPIC, "order.paid"}), batch_size=10
    )
