"""Root fields of the back office: box office sales, merchant order lists, sales figures and
the audit trail."""

from __future__ import annotations

from datetime import datetime

import strawberry

from boxoffice.errors import BadUserInput
from boxoffice.models.identity import Role
from boxoffice.schema.back_office import (
    AuditEntry,
    AuditEntryConnection,
    AuditFilter,
    BoxOfficeSaleInput,
    SalesStats,
)
from boxoffice.schema.context import Info
from boxoffice.schema.orders import Order, OrderConnection, OrderFilter
from boxoffice.services import audit_log, box_office, order_queries, sales_stats
from boxoffice.services.sales_stats import StatsPeriod
from boxoffice.services.viewer import Viewer


def staff_tenant(viewer: Viewer, tenant_id: str | None, *roles: Role) -> str:
    """The tenant a staff member means: the given one, or the only one they work for."""
    if tenant_id:
        return tenant_id
    own = sorted(viewer.tenants_with(*roles))
    if len(own) == 1:
        return own[0]
    raise BadUserInput("Say which tenant (tenantId).", field="tenantId")


@strawberry.type
class BackOfficeQuery:
    @strawberry.field(description="A tenant's orders for its staff: filters, newest first.")
    async def merchant_orders(
        self,
        info: Info,
        filter: OrderFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> OrderConnection:
        viewer = await info.context.viewer()
        viewer.require_user()
        f = filter or OrderFilter()
        page, total = await order_queries.merchant_orders(
            db=info.context.rt.db,
            viewer=viewer,
            tenant_id=staff_tenant(viewer, f.tenant_id, Role.ORGANIZER, Role.CHECKIN),
            status=f.status,
            event_id=f.event_id,
            session_id=f.session_id,
            date_from=f.date_from,
            date_to=f.date_to,
            buyer_phone=f.buyer_phone,
            first=first,
            after=after,
        )
        return OrderConnection.of(page, Order.from_model, total=total, after=after)

    @strawberry.field(
        description="Sales figures of a tenant (ORGANIZER) or, without tenantId, the platform "
        "(OPERATOR)."
    )
    async def sales_stats(
        self,
        info: Info,
        period: StatsPeriod,
        tenant_id: strawberry.ID | None = None,
        date_from: datetime | None = None,
        date_to: datetime | None = None,
    ) -> SalesStats:
        figures = await sales_stats.sales_stats(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            period=period,
            date_from=date_from,
            date_to=date_to,
        )
        return SalesStats.of(figures)

    @strawberry.field(description="The audit trail: OPERATOR everything, ORGANIZER their tenant.")
    async def audit_log(
        self,
        info: Info,
        filter: AuditFilter | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> AuditEntryConnection:
        f = filter or AuditFilter()
        page, total = await audit_log.audit_entries(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=f.tenant_id,
            actor_id=f.actor_id,
            action=f.action,
            target_id=f.target_id,
            date_from=f.date_from,
            date_to=f.date_to,
            first=first,
            after=after,
        )
        return AuditEntryConnection.of(page, AuditEntry.from_model, total=total, after=after)


@strawberry.type
class BackOfficeMutation:
    @strawberry.mutation(
        description="ORGANIZER: sell at the counter — held, ordered and paid in one step; tickets "
        "are issued as for online orders."
    )
    async def box_office_sale(self, info: Info, input: BoxOfficeSaleInput) -> Order:
        rt = info.context.rt
        order = await box_office.sell(
            deps=rt.order_deps,
            viewer=await info.context.viewer(),
            session_id=input.session_id,
            tier_id=input.tier_id,
            quantity=input.quantity,
            seat_ids=[str(s) for s in input.seat_ids] if input.seat_ids is not None else None,
            buyer_name=input.buyer.name if input.buyer else None,
            buyer_phone=input.buyer.phone if input.buyer else None,
            payment_method=input.payment_method,
            ticket_keys=rt.ticket_keys,
        )
        return Order.from_model(order)
