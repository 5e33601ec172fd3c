"""Factories for refunds and the waitlist, through the services (the API's path), and a
payment provider whose refunds fail on demand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select

from boxoffice.models.identity import User
from boxoffice.models.orders import Order
from boxoffice.models.refunds import Refund
from boxoffice.models.waitlist import WaitlistEntry
from boxoffice.providers.payments import (
    Acknowledgement,
    CallbackRequest,
    PaymentChannel,
    PaymentOrder,
    PaymentProvider,
    PaymentQuery,
    PaymentStart,
    ProviderError,
    RefundOrder,
    RefundOutcome,
    RefundStatus,
    VerifiedCallback,
)
from boxoffice.providers.payments.registry import PaymentProviders
from boxoffice.runtime import Runtime
from boxoffice.services import refunds, waitlist
from boxoffice.services.viewer import Viewer
from tests.helpers import viewer_for


async def request(
    rt: Runtime,
    user: User,
    order: Order,
    ticket_ids: list[str] | None = None,
    reason: str | None = "plans changed",
) -> Refund:
    return await refunds.request_refund(
        deps=rt.refund_deps,
        viewer=await viewer_for(rt, user),
        order_id=order.id,
        ticket_ids=ticket_ids,
        reason=reason,
    )


async def review(
    rt: Runtime, staff: Viewer, refund: Refund, *, approve: bool = True, opinion: str = "ok"
) -> Refund:
    return await refunds.review_refund(
        deps=rt.refund_deps, viewer=staff, refund_id=refund.id, approve=approve, opinion=opinion
    )


async def join(
    rt: Runtime, user: User, session_id: str, tier_id: str, quantity: int = 1
) -> WaitlistEntry:
    return await waitlist.join_waitlist(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, user),
        session_id=session_id,
        tier_id=tier_id,
        quantity=quantity,
    )


async def entry(rt: Runtime, entry_id: str) -> WaitlistEntry:
    async with rt.db.read() as session:
        found = await session.get(WaitlistEntry, entry_id)
    assert found is not None
    return found


async def refund_row(rt: Runtime, refund_id: str) -> Refund:
    async with rt.db.read() as session:
        found = await session.get(Refund, refund_id)
    assert found is not None
    return found


async def refunds_of(rt: Runtime, order_id: str) -> list[Refund]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(Refund).where(Refund.order_id == order_id).order_by(col(Refund.created_at))
        )
        return list(rows.all())


async def reload_order(rt: Runtime, order_id: str) -> Order:
    async with rt.db.read() as session:
        found = await session.get(Order, order_id)
    assert found is not None
    return found


@dataclass
class FlakyRefunds:
    """The sandbox provider with a refund switch: while ``failing`` (a provider code), refunds
    answer FAILED; ``unreachable`` makes them raise a retryable ``ProviderError``. Counts the
    refund calls and the refund numbers it saw."""

    inner: PaymentProvider
    failing: str | None = None
    unreachable: bool = False
    calls: list[str] = field(default_factory=list)

    @property
    def channel(self) -> PaymentChannel:
        return self.inner.channel

    async def start(self, order: PaymentOrder) -> PaymentStart:
        return await self.inner.start(order)

    def verify_callback(self, request: CallbackRequest, *, now: datetime) -> VerifiedCallback:
        return self.inner.verify_callback(request, now=now)

    def ack(self, accepted: bool) -> Acknowledgement:
        return self.inner.ack(accepted)

    async def refund(self, order: RefundOrder) -> RefundOutcome:
        self.calls.append(order.refund_no)
        if self.unreachable:
            raise ProviderError("connection reset", retryable=True)
        if self.failing:
            return RefundOutcome(
                RefundStatus.FAILED, order.refund_no, None, {"code": self.failing}, self.failing
            )
        return await self.inner.refund(order)

    async def query(self, payment_no: str) -> PaymentQuery:
        return await self.inner.query(payment_no)

    async def aclose(self) -> None:
        return None


@contextlib.contextmanager
def flaky_refunds(rt: Runtime) -> Iterator[FlakyRefunds]:
    """Put a ``FlakyRefunds`` in front of the runtime's sandbox for the block."""
    original = rt.payments
    sandbox = original.get(PaymentChannel.SANDBOX)
    assert sandbox is not None
    flaky = FlakyRefunds(sandbox)
    rt.payments = PaymentProviders([flaky], sandbox_gateway=original.sandbox_gateway)
    try:
        yield flaky
    finally:
        rt.payments = original
