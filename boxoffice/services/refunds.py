"""Refund requests and their review (DESIGN.md, Flows 6).

``request_refund``: the buyer (or the tenant's organizer on their behalf, e.g. for a
box-office sale) asks for some unused tickets of a PAID or PARTIALLY_REFUNDED order back, or
all of them, before the deadline of the event's refund rules. The refund is priced at once
(``quote_refund`` shows the same figures before): what the units cost (each unit's price less
its share of the order's discounts, ``unit_price_minor - discount_minor``) splits into the
fee and the amount paid back. The order becomes REFUNDING; one open refund per order.

A consequence of pricing by what each unit cost: a coupon scoped to one tier is spread over
all of the order's units (``pricing.spread``), so refunding some units gives back their share
of that discount too, not their list price; the coupon itself only comes back with a refund of
the whole order.

``review_refund`` (the tenant's ORGANIZERs): rejecting puts the order back (PAID, or
PARTIALLY_REFUNDED after an earlier refund); approving carries the refund out at once
(``refund_processing.process_refund``). Every refusal about the order's or a ticket's state
answers ``ORDER_STATE_INVALID`` with a ``reason``: NOT_REFUNDABLE_STATUS, REFUND_IN_PROGRESS,
TICKET_USED, TICKET_REVOKED, NOTHING_TO_REFUND, REFUNDS_NOT_ALLOWED, REFUND_DEADLINE_PASSED,
ALREADY_REVIEWED, REFUND_PROCESSING.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.errors import BadUserInput, NotFound, OrderStateInvalid
from boxoffice.models.events import EventSession
from boxoffice.models.identity import Role
from boxoffice.models.orders import (
    ItemStatus,
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentStatus,
)
from boxoffice.models.refunds import Refund, RefundSource, RefundStatus
from boxoffice.models.tickets import Ticket, TicketStatus
from boxoffice.services import audit, order_states, validation
from boxoffice.services.orders import publish_order
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.refund_policies import EffectivePolicy, FeeTier, policy_for
from boxoffice.services.refund_processing import (
    RefundDeps,
    emit_refund,
    new_refund_no,
    process_refund,
)
from boxoffice.services.viewer import Viewer

REFUNDABLE_ORDER_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED})
MAX_TICKETS_PER_REFUND = 100
AUDITED_FIELDS = ("status", "opinion", "amount_minor", "fee_minor")

NEWEST_FIRST: list[SortKey[Refund]] = [
    SortKey(col(Refund.created_at), lambda r: r.created_at, "datetime", descending=True),
    SortKey(col(Refund.id), lambda r: r.id, descending=True),
]


def refused(message: str, reason: str, **details: Any) -> OrderStateInvalid:
    return OrderStateInvalid(message, reason=reason, **details)


@dataclass(frozen=True)
class RefundQuote:
    order_id: str
    item_ids: tuple[str, ...]
    ticket_ids: tuple[str, ...]
    cost_minor: int
    fee_minor: int
    currency: str
    hours_left: float
    deadline: datetime
    tier: FeeTier | None

    @property
    def amount_minor(self) -> int:
        return self.cost_minor - self.fee_minor

    @property
    def units(self) -> int:
        return len(self.item_ids)


async def _order_for(session: AsyncSession, viewer: Viewer, order_id: str, *, lock: bool) -> Order:
    """The caller's order, or one of a tenant the caller organizes; NOT_FOUND otherwise."""
    user_id = viewer.require_user()
    query = select(Order).where(Order.id == order_id)
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    order = (await session.exec(query)).first()
    if order is None or (
        order.user_id != user_id and not viewer.can_staff(order.tenant_id, Role.ORGANIZER)
    ):
        raise NotFound("No such order.", field="orderId")
    return order


async def _chosen_items(
    session: AsyncSession, order: Order, ticket_ids: Sequence[str] | None
) -> tuple[list[OrderItem], list[str]]:
    """The order's live items to refund (those of ``ticket_ids``, or all) and their tickets.
    Used tickets cannot be refunded."""
    live = {
        item.id: item
        for item in (
            await session.exec(
                select(OrderItem)
                .where(
                    OrderItem.order_id == order.id,
                    col(OrderItem.live).is_(True),
                    OrderItem.status == ItemStatus.ACTIVE,
                )
                .order_by(col(OrderItem.id))
            )
        ).all()
    }
    tickets = (await session.exec(select(Ticket).where(Ticket.order_id == order.id))).all()
    by_item = {t.order_item_id: t for t in tickets if t.order_item_id}
    if ticket_ids:
        if len(ticket_ids) > MAX_TICKETS_PER_REFUND:
            raise BadUserInput(
                f"At most {MAX_TICKETS_PER_REFUND} tickets per refund.", field="ticketIds"
            )
        if len(set(ticket_ids)) != len(ticket_ids):
            raise BadUserInput("A ticket is listed twice.", field="ticketIds")
        known = {t.id: t for t in tickets}
        chosen: list[OrderItem] = []
        for ticket_id in ticket_ids:
            ticket = known.get(ticket_id)
            if ticket is None:
                raise BadUserInput(
                    "No such ticket in this order.", field="ticketIds", ticketIds=[ticket_id]
                )
            if ticket.status is TicketStatus.REVOKED or ticket.order_item_id not in live:
                raise refused(
                    "This ticket was already refunded or revoked.",
                    "TICKET_REVOKED",
                    ticketSn=ticket.ticket_sn,
                )
            chosen.append(live[ticket.order_item_id])
    else:
        chosen = list(live.values())
    if not chosen:
        raise refused("Nothing of this order is left to refund.", "NOTHING_TO_REFUND")
    used = [
        by_item[i.id].ticket_sn
        for i in chosen
        if i.id in by_item and by_item[i.id].status is TicketStatus.USED
    ]
    if used:
        raise refused("A used ticket cannot be refunded.", "TICKET_USED", ticketSns=used)
    return chosen, [by_item[i.id].id for i in chosen if i.id in by_item]


async def _quote(
    session: AsyncSession, order: Order, ticket_ids: Sequence[str] | None, now: datetime
) -> RefundQuote:
    if order.status is OrderStatus.REFUNDING:
        raise refused("A refund of this order is already open.", "REFUND_IN_PROGRESS")
    if order.status not in REFUNDABLE_ORDER_STATUSES:
        raise refused(
            f"An order that is {order.status} cannot be refunded.",
            "NOT_REFUNDABLE_STATUS",
            current=order.status.value,
        )
    items, tickets = await _chosen_items(session, order, ticket_ids)
    performance = await session.get(EventSession, order.session_id)
    assert performance is not None
    policy: EffectivePolicy = await policy_for(session, order.tenant_id, order.event_id)
    deadline = policy.deadline(performance.starts_at)
    if not policy.refundable:
        raise refused("This event's tickets cannot be refunded.", "REFUNDS_NOT_ALLOWED")
    if now > deadline:
        raise refused(
            "The refund deadline has passed.",
            "REFUND_DEADLINE_PASSED",
            deadline=deadline.isoformat(),
        )
    cost = sum(item.paid_minor for item in items)
    hours_left = (performance.starts_at - now).total_seconds() / 3600
    return RefundQuote(
        order_id=order.id,
        item_ids=tuple(item.id for item in items),
        ticket_ids=tuple(tickets),
        cost_minor=cost,
        fee_minor=policy.fee(cost, len(items), hours_left),
        currency=order.currency,
        hours_left=hours_left,
        deadline=deadline,
        tier=policy.tier_for(hours_left),
    )


async def quote_refund(
    *, deps: RefundDeps, viewer: Viewer, order_id: str, ticket_ids: Sequence[str] | None
) -> RefundQuote:
    """What ``request_refund`` would charge and pay back; raises what it would raise."""
    async with deps.orders.db.read() as session:
        order = await _order_for(session, viewer, order_id, lock=False)
        return await _quote(session, order, ticket_ids, utcnow())


async def paid_with(session: AsyncSession, order_id: str) -> Payment | None:
    """The payment that paid the order (the one a refund goes back through)."""
    return (
        await session.exec(
            select(Payment).where(
                Payment.order_id == order_id,
                col(Payment.status).in_((PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED)),
            )
        )
    ).first()


async def request_refund(
    *,
    deps: RefundDeps,
    viewer: Viewer,
    order_id: str,
    ticket_ids: Sequence[str] | None,
    reason: str | None,
) -> Refund:
    """Ask for tickets of an order back (all of them without ``ticket_ids``): a PENDING refund
    for the organizer to review; the order becomes REFUNDING. Staff asking on the buyer's
    behalf is audited (``refund.request``).

    Raises ``NotFound`` (someone else's order), ``BadUserInput`` (``ticketIds``, ``reason``),
    ``OrderStateInvalid`` with a ``reason`` (see the module docstring)."""
    note = validation.optional_text(reason, field="reason", max_length=500)
    now = utcnow()
    try:
        async with deps.orders.db.write() as session:
            order = await _order_for(session, viewer, order_id, lock=True)
            quote = await _quote(session, order, ticket_ids, now)
            payment = await paid_with(session, order.id)
            refund = Refund(
                refund_no=new_refund_no(now),
                tenant_id=order.tenant_id,
                order_id=order.id,
                event_id=order.event_id,
                session_id=order.session_id,
                user_id=order.user_id,
                requested_by=viewer.user_id,
                source=RefundSource.REQUEST,
                status=RefundStatus.PENDING,
                reason=note,
                item_ids=list(quote.item_ids),
                cost_minor=quote.cost_minor,
                fee_minor=quote.fee_minor,
                amount_minor=quote.amount_minor,
                currency=order.currency,
                payment_no=payment.payment_no if payment else None,
                method=payment.channel if payment else None,
                open_order_id=order.id,
                created_at=now,
                updated_at=now,
            )
            session.add(refund)
            await session.flush()
            order_states.check(order.id, order.status, OrderStatus.REFUNDING)
            order.status, order.updated_at = OrderStatus.REFUNDING, now
            session.add(order)
            await emit_refund(session, "refund.requested", refund)
            if order.user_id != viewer.user_id:  # staff asking on the buyer's behalf
                audit.record(
                    session,
                    viewer=viewer,
                    action="refund.request",
                    target_type="Refund",
                    target_id=refund.id,
                    tenant_id=refund.tenant_id,
                    after=audit.snapshot(refund, AUDITED_FIELDS),
                )
    except IntegrityError as exc:
        raise refused("A refund of this order is already open.", "REFUND_IN_PROGRESS") from exc
    await publish_order(deps.orders.broker, order)
    return refund


async def _managed(session: AsyncSession, viewer: Viewer, refund_id: str) -> Refund:
    """A refund the caller organizes (locked); NOT_FOUND for other tenants' staff."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    refund = (
        await session.exec(
            select(Refund)
            .where(Refund.id == refund_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).first()
    if refund is None:
        raise NotFound("No such refund.", field="refundId")
    try:
        viewer.require_staff(refund.tenant_id, Role.ORGANIZER)
    except NotFound as exc:
        raise NotFound("No such refund.", field="refundId") from exc
    return refund


async def _reopen_order(session: AsyncSession, refund: Refund, now: datetime) -> Order:
    """A rejected refund gives the order back its state before: PARTIALLY_REFUNDED after an
    earlier refund, else PAID."""
    order = (
        await session.exec(
            select(Order)
            .where(Order.id == refund.order_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).one()
    earlier = (
        await session.exec(
            select(func.count())
            .select_from(OrderItem)
            .where(OrderItem.order_id == order.id, OrderItem.status == ItemStatus.REFUNDED)
        )
    ).one()
    target = OrderStatus.PARTIALLY_REFUNDED if earlier else OrderStatus.PAID
    order_states.check(order.id, order.status, target)
    order.status, order.updated_at = target, now
    session.add(order)
    return order


async def _refuse_used(session: AsyncSession, refund: Refund) -> None:
    """A ticket checked in since the request cannot be refunded any more (the organizer may
    reject the request)."""
    used = (
        await session.exec(
            select(Ticket.ticket_sn).where(
                col(Ticket.order_item_id).in_(sorted(refund.item_ids)),
                Ticket.status == TicketStatus.USED,
            )
        )
    ).all()
    if used:
        raise refused(
            "A ticket of this refund was checked in since.", "TICKET_USED", ticketSns=list(used)
        )


async def review_refund(
    *, deps: RefundDeps, viewer: Viewer, refund_id: str, approve: bool, opinion: str | None
) -> Refund:
    """The organizer's decision. Approving a PENDING refund carries it out at once; approving
    again answers the refund as it stands (``retryRefund`` tries a stalled one again).
    Rejecting works on a PENDING refund, and on a FAILED one (the provider refused it) that
    nobody is processing. Audited.

    Raises ``NotFound`` (also another tenant's), ``Forbidden``, ``BadUserInput`` (opinion),
    ``OrderStateInvalid`` (reason ALREADY_REVIEWED, REFUND_PROCESSING, TICKET_USED: checked in
    since the request)."""
    note = validation.optional_text(opinion, field="opinion", max_length=500)
    now = utcnow()
    reopened: Order | None = None
    async with deps.orders.db.write() as session:
        refund = await _managed(session, viewer, refund_id)
        before = audit.snapshot(refund, AUDITED_FIELDS)
        if refund.source is RefundSource.LATE_PAYMENT:
            raise refused("This refund runs on its own.", "ALREADY_REVIEWED")
        decided = RefundStatus.APPROVED if approve else RefundStatus.REJECTED
        if approve and refund.status in (
            RefundStatus.APPROVED,
            RefundStatus.COMPLETED,
            RefundStatus.FAILED,
        ):
            return refund
        if not approve and refund.status is RefundStatus.REJECTED:
            return refund
        if refund.status is RefundStatus.FAILED and not approve:
            if refund.processing_until is not None and refund.processing_until > now:
                raise refused("The refund is being processed.", "REFUND_PROCESSING")
        elif refund.status is not RefundStatus.PENDING:
            raise refused(
                f"This refund is already {refund.status.value}.",
                "ALREADY_REVIEWED",
                current=refund.status.value,
            )
        if approve:
            await _refuse_used(session, refund)
        refund.status = decided
        refund.opinion = note
        refund.reviewed_by, refund.reviewed_at, refund.updated_at = viewer.user_id, now, now
        if approve:
            refund.next_attempt_at = now
        else:
            refund.open_order_id = refund.next_attempt_at = None
            reopened = await _reopen_order(session, refund, now)
        session.add(refund)
        await emit_refund(session, "refund.approved" if approve else "refund.rejected", refund)
        audit.record(
            session,
            viewer=viewer,
            action="refund.approve" if approve else "refund.reject",
            target_type="Refund",
            target_id=refund.id,
            tenant_id=refund.tenant_id,
            before=before,
            after=audit.snapshot(refund, AUDITED_FIELDS),
        )
    if reopened is not None:
        await publish_order(deps.orders.broker, reopened)
        return refund
    return await process_refund(deps, refund.id)


async def retry_refund(*, deps: RefundDeps, viewer: Viewer, refund_id: str) -> Refund:
    """Try an approved refund that did not go through again, now. Audited."""
    async with deps.orders.db.write() as session:
        refund = await _managed(session, viewer, refund_id)
        if refund.status not in (RefundStatus.APPROVED, RefundStatus.FAILED):
            raise refused(
                f"A {refund.status.value} refund cannot be retried.",
                "NOT_RETRYABLE",
                current=refund.status.value,
            )
        audit.record(
            session,
            viewer=viewer,
            action="refund.retry",
            target_type="Refund",
            target_id=refund.id,
            tenant_id=refund.tenant_id,
            after={"attempts": refund.attempts},
        )
    return await process_refund(deps, refund.id)


async def get_refund(*, deps: RefundDeps, viewer: Viewer, refund_id: str) -> Refund:
    """The buyer's refund, or one of a tenant the caller organizes; NOT_FOUND otherwise."""
    user_id = viewer.require_user()
    async with deps.orders.db.read() as session:
        refund = await session.get(Refund, refund_id)
    if refund is None or (
        refund.user_id != user_id and not viewer.can_staff(refund.tenant_id, Role.ORGANIZER)
    ):
        raise NotFound("No such refund.")
    return refund


async def my_refunds(
    *,
    deps: RefundDeps,
    viewer: Viewer,
    status: RefundStatus | None,
    first: int | None,
    after: str | None,
) -> tuple[Page[Refund], Callable[[], Awaitable[int]]]:
    """The caller's refunds, newest first."""
    user_id = viewer.require_user()
    conditions: list[Any] = [col(Refund.user_id) == user_id]
    if status is not None:
        conditions.append(col(Refund.status) == status)
    return await _page(deps, conditions, first, after)


async def tenant_refunds(
    *,
    deps: RefundDeps,
    viewer: Viewer,
    tenant_id: str | None,
    status: RefundStatus | None,
    event_id: str | None = None,
    first: int | None,
    after: str | None,
) -> tuple[Page[Refund], Callable[[], Awaitable[int]]]:
    """A tenant's refunds, newest first, for its organizers (their only tenant by default)
    and operators; other tenants' staff get NOT_FOUND."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    if tenant_id is None:
        mine = viewer.tenants_with(Role.ORGANIZER)
        if len(mine) != 1:
            raise BadUserInput("Say which tenant.", field="tenantId")
        tenant_id = next(iter(mine))
    viewer.require_staff(tenant_id, Role.ORGANIZER)
    conditions: list[Any] = [col(Refund.tenant_id) == tenant_id]
    if status is not None:
        conditions.append(col(Refund.status) == status)
    if event_id is not None:
        conditions.append(col(Refund.event_id) == event_id)
    return await _page(deps, conditions, first, after)


async def _page(
    deps: RefundDeps, conditions: list[Any], first: int | None, after: str | None
) -> tuple[Page[Refund], Callable[[], Awaitable[int]]]:
    size = page_size(first)
    query = apply_keyset(select(Refund).where(*conditions), NEWEST_FIRST, after=after)
    async with deps.orders.db.read() as session:
        rows = (await session.exec(query.limit(size + 1))).all()

    async def total() -> int:
        async with deps.orders.db.read() as session:
            counted = await session.exec(
                select(func.count()).select_from(Refund).where(*conditions)
            )
            return int(counted.one())

    return Page.from_rows(rows, NEWEST_FIRST, size), total
