"""GraphQL types of refunds, refund rules and cancelled events' refund runs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

import strawberry

from boxoffice.models import refunds as m
from boxoffice.schema.context import Info
from boxoffice.schema.money import Money
from boxoffice.schema.pagination import Connection
from boxoffice.schema.tickets import Ticket
from boxoffice.services.event_refunds import EventRefundProgress as Progress
from boxoffice.services.refund_policies import EffectivePolicy, FeeTier, PolicySource
from boxoffice.services.refunds import RefundQuote as Quote

if TYPE_CHECKING:
    from boxoffice.schema.orders import Order

for _enum in (m.RefundStatus, m.RefundSource, m.EventRefundRunStatus, PolicySource):
    strawberry.enum(_enum)


@strawberry.type(
    description="A refund of some (or all) units of an order: `amount` goes back to the buyer, "
    "`fee` stays with the organizer; together they are what the units cost."
)
class Refund:
    id: strawberry.ID
    refund_no: str = strawberry.field(description="The provider's out_refund_no.")
    status: m.RefundStatus
    source: m.RefundSource
    amount: Money
    fee: Money
    cost: Money = strawberry.field(description="What the refunded units cost (amount + fee).")
    units: int
    order_id: strawberry.ID
    event_id: strawberry.ID
    session_id: strawberry.ID
    reason: str | None
    opinion: str | None = strawberry.field(description="The organizer's review note.")
    method: str | None = strawberry.field(
        description="How the money goes back: the payment channel, or the counter's method."
    )
    failure: str | None = strawberry.field(description="Why the last attempt did not go through.")
    attempts: int
    next_attempt_at: datetime | None
    reviewed_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    _model: strawberry.Private[m.Refund]

    @classmethod
    def from_model(cls, refund: m.Refund) -> Refund:
        c = refund.currency
        return cls(
            id=strawberry.ID(refund.id),
            refund_no=refund.refund_no,
            status=refund.status,
            source=refund.source,
            amount=Money.from_minor(refund.amount_minor, c),
            fee=Money.from_minor(refund.fee_minor, c),
            cost=Money.from_minor(refund.cost_minor, c),
            units=len(refund.item_ids),
            order_id=strawberry.ID(refund.order_id),
            event_id=strawberry.ID(refund.event_id),
            session_id=strawberry.ID(refund.session_id),
            reason=refund.reason,
            opinion=refund.opinion,
            method=refund.method,
            failure=refund.failure,
            attempts=refund.attempts,
            next_attempt_at=refund.next_attempt_at,
            reviewed_at=refund.reviewed_at,
            completed_at=refund.completed_at,
            created_at=refund.created_at,
            _model=refund,
        )

    @strawberry.field(description="The refunded order.")
    async def order(
        self, info: Info
    ) -> Annotated[Order, strawberry.lazy("boxoffice.schema.orders")] | None:
        from boxoffice.schema.orders import Order

        found = await info.context.loaders.order_by_id.load(self._model.order_id)
        return Order.from_model(found) if found else None

    @strawberry.field(description="The tickets of the refunded units (revoked once COMPLETED).")
    async def tickets(self, info: Info) -> list[Ticket]:
        rows = await info.context.loaders.tickets_by_order.load(self._model.order_id)
        wanted = set(self._model.item_ids)
        return [Ticket.from_model(t) for t in rows if t.order_item_id in wanted]


@strawberry.type(name="RefundConnection")
class RefundConnection(Connection[Refund]):
    pass


@strawberry.type(description="A fee tier: applies when at least `hoursBefore` hours are left.")
class RefundFeeTier:
    hours_before: int
    percent: Decimal = strawberry.field(description="Percent of what the units cost.")
    fixed: Money = strawberry.field(description="Per unit.")

    @classmethod
    def of(cls, tier: FeeTier, currency: str = "CNY") -> RefundFeeTier:
        return cls(
            hours_before=tier.hours_before,
            percent=(Decimal(tier.percent_bp) / 100).quantize(Decimal("0.01")),
            fixed=Money.from_minor(tier.fixed_minor, currency),
        )


@strawberry.type(description="The refund rules in force for a tenant or an event.")
class RefundPolicy:
    tenant_id: strawberry.ID
    event_id: strawberry.ID | None = strawberry.field(
        description="Set when the event's own rules override the tenant's."
    )
    source: PolicySource
    refundable: bool
    deadline_hours: int = strawberry.field(
        description="No refunds within this many hours of the session's start."
    )
    fee_tiers: list[RefundFeeTier]
    updated_at: datetime | None

    @classmethod
    def of(cls, policy: EffectivePolicy) -> RefundPolicy:
        return cls(
            tenant_id=strawberry.ID(policy.tenant_id),
            event_id=strawberry.ID(policy.event_id) if policy.event_id else None,
            source=policy.source,
            refundable=policy.refundable,
            deadline_hours=policy.deadline_hours,
            fee_tiers=[RefundFeeTier.of(t) for t in policy.fee_tiers],
            updated_at=policy.updated_at,
        )


@strawberry.type(description="What a refund would pay back, before asking for it.")
class RefundQuote:
    order_id: strawberry.ID
    ticket_ids: list[strawberry.ID]
    units: int
    cost: Money
    fee: Money
    amount: Money
    hours_before_session: float
    deadline: datetime = strawberry.field(description="The last moment to ask for a refund.")
    fee_tier: RefundFeeTier | None

    @classmethod
    def of(cls, quote: Quote) -> RefundQuote:
        c = quote.currency
        return cls(
            order_id=strawberry.ID(quote.order_id),
            ticket_ids=[strawberry.ID(t) for t in quote.ticket_ids],
            units=quote.units,
            cost=Money.from_minor(quote.cost_minor, c),
            fee=Money.from_minor(quote.fee_minor, c),
            amount=Money.from_minor(quote.amount_minor, c),
            hours_before_session=round(quote.hours_left, 2),
            deadline=quote.deadline,
            fee_tier=RefundFeeTier.of(quote.tier, c) if quote.tier else None,
        )


@strawberry.type(description="A cancelled event's refunds of its paid orders.")
class EventRefundProgress:
    event_id: strawberry.ID
    status: m.EventRefundRunStatus
    total: int = strawberry.field(description="Refunds made so far (one per paid order).")
    completed: int
    failed: int = strawberry.field(description="Refused by the provider; retried with backoff.")
    in_progress: int
    progress: float = strawberry.field(description="completed / total, from 0 to 1.")
    refunded: Money
    started_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, progress: Progress) -> EventRefundProgress:
        return cls(
            event_id=strawberry.ID(progress.run.event_id),
            status=progress.run.status,
            total=progress.total,
            completed=progress.completed,
            failed=progress.failed,
            in_progress=progress.in_progress,
            progress=progress.completed / progress.total if progress.total else 1.0,
            refunded=Money.from_minor(progress.refunded_minor, progress.currency),
            started_at=progress.run.created_at,
            finished_at=progress.run.finished_at,
        )


@strawberry.input
class RefundFeeTierInput:
    hours_before: int = strawberry.field(
        description="Applies when at least this many hours are left."
    )
    percent: Decimal = strawberry.field(default=Decimal(0), description="0 to 100.")
    fixed: Decimal = strawberry.field(default=Decimal(0), description="Per unit.")


@strawberry.input
class SetRefundPolicyInput:
    tenant_id: strawberry.ID | None = strawberry.field(
        default=None, description="Organizers of one tenant may leave it out."
    )
    event_id: strawberry.ID | None = strawberry.field(
        default=None, description="Set the event's own rules (overriding the tenant's)."
    )
    refundable: bool = True
    deadline_hours: int = 48
    fee_tiers: list[RefundFeeTierInput] = strawberry.field(default_factory=list)
