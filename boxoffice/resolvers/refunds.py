"""Root fields for refunds, refund rules and cancelled events' refund runs."""

from __future__ import annotations

import strawberry

from boxoffice.errors import NotFound
from boxoffice.models.refunds import RefundStatus
from boxoffice.schema.context import Info
from boxoffice.schema.refunds import (
    EventRefundProgress,
    Refund,
    RefundConnection,
    RefundPolicy,
    RefundQuote,
    SetRefundPolicyInput,
)
from boxoffice.services import event_refunds, refund_policies, refunds
from boxoffice.services.refund_policies import FeeTierSpec


@strawberry.type
class RefundsQuery:
    @strawberry.field(
        description="What refunding these tickets of the order (all without `ticketIds`) "
        "would pay back and charge; refused exactly as requestRefund would be."
    )
    async def refund_quote(
        self, info: Info, order_id: strawberry.ID, ticket_ids: list[strawberry.ID] | None = None
    ) -> RefundQuote:
        quote = await refunds.quote_refund(
            deps=info.context.rt.refund_deps,
            viewer=await info.context.viewer(),
            order_id=order_id,
            ticket_ids=ticket_ids,
        )
        return RefundQuote.of(quote)

    @strawberry.field(description="A refund: the buyer's, or of a tenant the caller organizes.")
    async def refund(self, info: Info, id: strawberry.ID) -> Refund | None:
        try:
            found = await refunds.get_refund(
                deps=info.context.rt.refund_deps, viewer=await info.context.viewer(), refund_id=id
            )
        except NotFound:
            return None
        return Refund.from_model(found)

    @strawberry.field(description="The caller's refunds, newest first.")
    async def my_refunds(
        self,
        info: Info,
        status: RefundStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> RefundConnection:
        page, total = await refunds.my_refunds(
            deps=info.context.rt.refund_deps,
            viewer=await info.context.viewer(),
            status=status,
            first=first,
            after=after,
        )
        return RefundConnection.of(page, Refund.from_model, total=total, after=after)

    @strawberry.field(
        description="A tenant's refunds, newest first (organizers: their tenant by default)."
    )
    async def refunds(
        self,
        info: Info,
        tenant_id: strawberry.ID | None = None,
        status: RefundStatus | None = None,
        event_id: strawberry.ID | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> RefundConnection:
        page, total = await refunds.tenant_refunds(
            deps=info.context.rt.refund_deps,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            status=status,
            event_id=event_id,
            first=first,
            after=after,
        )
        return RefundConnection.of(page, Refund.from_model, total=total, after=after)

    @strawberry.field(
        description="The refund rules in force for an event (anyone who can see it), or a "
        "tenant's own (its organizers)."
    )
    async def refund_policy(
        self,
        info: Info,
        event_id: strawberry.ID | None = None,
        tenant_id: strawberry.ID | None = None,
    ) -> RefundPolicy:
        policy = await refund_policies.get_refund_policy(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            event_id=event_id,
        )
        return RefundPolicy.of(policy)

    @strawberry.field(
        description="A cancelled event's refunds of its paid orders (null: not cancelled)."
    )
    async def event_refund_progress(
        self, info: Info, event_id: strawberry.ID
    ) -> EventRefundProgress | None:
        progress = await event_refunds.event_refund_progress(
            db=info.context.rt.db, viewer=await info.context.viewer(), event_id=event_id
        )
        return EventRefundProgress.of(progress) if progress else None


@strawberry.type
class RefundsMutation:
    @strawberry.mutation(
        description="Ask for tickets of a paid order back (all of them without `ticketIds`); "
        "the tenant's organizer reviews it. ORDER_STATE_INVALID (with a `reason`) for used "
        "tickets, past the deadline, or an order that cannot be refunded now."
    )
    async def request_refund(
        self,
        info: Info,
        order_id: strawberry.ID,
        ticket_ids: list[strawberry.ID] | None = None,
        reason: str | None = None,
    ) -> Refund:
        refund = await refunds.request_refund(
            deps=info.context.rt.refund_deps,
            viewer=await info.context.viewer(),
            order_id=order_id,
            ticket_ids=ticket_ids,
            reason=reason,
        )
        return Refund.from_model(refund)

    @strawberry.mutation(
        description="Organizers: approve (the money goes back at once, then tickets, seats "
        "and the order follow) or reject a refund, with an opinion."
    )
    async def review_refund(
        self, info: Info, refund_id: strawberry.ID, approve: bool, opinion: str | None = None
    ) -> Refund:
        refund = await refunds.review_refund(
            deps=info.context.rt.refund_deps,
            viewer=await info.context.viewer(),
            refund_id=refund_id,
            approve=approve,
            opinion=opinion,
        )
        return Refund.from_model(refund)

    @strawberry.mutation(
        description="Organizers: try an approved refund that did not go through again."
    )
    async def retry_refund(self, info: Info, refund_id: strawberry.ID) -> Refund:
        refund = await refunds.retry_refund(
            deps=info.context.rt.refund_deps,
            viewer=await info.context.viewer(),
            refund_id=refund_id,
        )
        return Refund.from_model(refund)

    @strawberry.mutation(description="Organizers: set the tenant's refund rules, or an event's.")
    async def set_refund_policy(self, info: Info, input: SetRefundPolicyInput) -> RefundPolicy:
        policy = await refund_policies.set_refund_policy(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=input.tenant_id,
            event_id=input.event_id,
            refundable=input.refundable,
            deadline_hours=input.deadline_hours,
            fee_tiers=[
                FeeTierSpec(hours_before=t.hours_before, percent=t.percent, fixed=t.fixed)
                for t in input.fee_tiers
            ],
        )
        return RefundPolicy.of(policy)
