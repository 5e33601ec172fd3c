"""GraphQL types of the back office: sales figures, box office sales, the audit trail."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from boxoffice.models.identity import AuditEntry as AuditEntryModel
from boxoffice.schema.money import Money
from boxoffice.schema.pagination import Connection
from boxoffice.services.box_office import BoxOfficePayment
from boxoffice.services.sales_stats import SalesFigures, StatsPeriod

strawberry.enum(StatsPeriod)
strawberry.enum(BoxOfficePayment)


@strawberry.type
class TierSellThrough:
    tier_id: strawberry.ID
    name: str
    sold: int
    capacity: int
    rate: float = strawberry.field(description="sold / capacity")


@strawberry.type
class SessionSellThrough:
    session_id: strawberry.ID
    event_id: strawberry.ID
    event_title: str
    starts_at: datetime
    tiers: list[TierSellThrough]


@strawberry.type(description="Sales of a tenant (or the platform) over a period; see the README.")
class SalesStats:
    tenant_id: strawberry.ID | None
    period: StatsPeriod
    date_from: datetime | None
    date_to: datetime
    orders: int
    tickets_sold: int
    gross_revenue: Money
    refunded: Money
    net: Money
    new_customers: int
    sessions: list[SessionSellThrough]

    @classmethod
    def of(cls, figures: SalesFigures) -> SalesStats:
        c = figures.currency
        return cls(
            tenant_id=strawberry.ID(figures.tenant_id) if figures.tenant_id else None,
            period=figures.period,
            date_from=figures.starts,
            date_to=figures.ends,
            orders=figures.orders,
            tickets_sold=figures.tickets_sold,
            gross_revenue=Money.from_minor(figures.gross_minor, c),
            refunded=Money.from_minor(figures.refunded_minor, c),
            net=Money.from_minor(figures.net_minor, c),
            new_customers=figures.new_customers,
            sessions=[
                SessionSellThrough(
                    session_id=strawberry.ID(s.session_id),
                    event_id=strawberry.ID(s.event_id),
                    event_title=s.event_title,
                    starts_at=s.starts_at,
                    tiers=[
                        TierSellThrough(
                            tier_id=strawberry.ID(t.tier_id),
                            name=t.name,
                            sold=t.sold,
                            capacity=t.capacity,
                            rate=round(t.rate, 4),
                        )
                        for t in s.tiers
                    ],
                )
                for s in figures.sessions
            ],
        )


@strawberry.input
class BuyerInput:
    name: str | None = None
    phone: str | None = None


@strawberry.input
class BoxOfficeSaleInput:
    session_id: strawberry.ID
    tier_id: strawberry.ID | None = None
    quantity: int | None = None
    seat_ids: list[strawberry.ID] | None = None
    buyer: BuyerInput | None = None
    payment_method: BoxOfficePayment


@strawberry.type
class AuditEntry:
    id: strawberry.ID
    tenant_id: strawberry.ID | None
    actor_id: strawberry.ID | None
    action: str
    target_type: str
    target_id: str | None
    before: JSON | None
    after: JSON | None
    ip: str | None
    request_id: str | None
    created_at: datetime

    @classmethod
    def from_model(cls, entry: AuditEntryModel) -> AuditEntry:
        return cls(
            id=strawberry.ID(entry.id),
            tenant_id=strawberry.ID(entry.tenant_id) if entry.tenant_id else None,
            actor_id=strawberry.ID(entry.actor_id) if entry.actor_id else None,
            action=entry.action,
            target_type=entry.target_type,
            target_id=entry.target_id,
            before=JSON(entry.before) if entry.before is not None else None,
            after=JSON(entry.after) if entry.after is not None else None,
            ip=entry.ip,
            request_id=entry.request_id,
            created_at=entry.created_at,
        )


@strawberry.type(name="AuditEntryConnection")
class AuditEntryConnection(Connection[AuditEntry]):
    pass


@strawberry.input
class AuditFilter:
    tenant_id: strawberry.ID | None = None
    actor_id: strawberry.ID | None = None
    action: str | None = None
    target_id: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
