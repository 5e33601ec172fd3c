"""Sales figures of a tenant over a period, and the live dashboard's trigger.

Periods are calendar periods in the tenant's time zone (default Asia/Shanghai): today, this
week (from Monday), this month, all time, or a custom range. An order counts in the period it
was paid in:

* ``orders``: orders paid in the period (online, box office and agents alike);
* ``ticketsSold``: their units not refunded;
* ``grossRevenue``: what those orders charged; ``refunded``: what has been refunded of them;
  ``net = grossRevenue - refunded``;
* ``newCustomers``: buyers whose first paid order with the tenant falls in the period;
* sell-through: sold units over capacity per session and tier, for the tenant's sessions
  starting in the period (or upcoming, for all-time and today).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import orjson
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.broker import Broker, channels
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput
from boxoffice.models.events import Event, EventSession, TicketTier
from boxoffice.models.identity import Role
from boxoffice.models.orders import ItemStatus, Order, OrderItem, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.services.viewer import Viewer

DEFAULT_TIMEZONE = "Asia/Shanghai"
SOLD_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.REFUNDING,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.REFUNDED,
    OrderStatus.COMPLETED,
)
MAX_SESSIONS = 50


class StatsPeriod(StrEnum):
    TODAY = "TODAY"
    THIS_WEEK = "THIS_WEEK"
    THIS_MONTH = "THIS_MONTH"
    ALL_TIME = "ALL_TIME"
    CUSTOM = "CUSTOM"


@dataclass(frozen=True)
class TierSellThrough:
    tier_id: str
    name: str
    sold: int
    capacity: int

    @property
    def rate(self) -> float:
        return self.sold / self.capacity if self.capacity else 0.0


@dataclass(frozen=True)
class SessionSellThrough:
    session_id: str
    event_id: str
    event_title: str
    starts_at: datetime
    tiers: list[TierSellThrough]


@dataclass(frozen=True)
class SalesFigures:
    tenant_id: str | None
    period: StatsPeriod
    starts: datetime | None
    ends: datetime
    currency: str
    orders: int
    tickets_sold: int
    gross_minor: int
    refunded_minor: int
    new_customers: int
    sessions: list[SessionSellThrough] = field(default_factory=list)

    @property
    def net_minor(self) -> int:
        return self.gross_minor - self.refunded_minor


def period_bounds(
    period: StatsPeriod,
    *,
    now: datetime,
    tz: str = DEFAULT_TIMEZONE,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
) -> tuple[datetime | None, datetime]:
    zone = ZoneInfo(tz)
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is StatsPeriod.TODAY:
        return midnight, now
    if period is StatsPeriod.THIS_WEEK:
        return midnight - timedelta(days=local.weekday()), now
    if period is StatsPeriod.THIS_MONTH:
        return midnight.replace(day=1), now
    if period is StatsPeriod.ALL_TIME:
        return None, now
    if date_from is None or date_to is None:
        raise BadUserInput("A custom period needs dateFrom and dateTo.", field="dateFrom")
    if date_to <= date_from:
        raise BadUserInput("dateTo must be after dateFrom.", field="dateTo")
    if date_to - date_from > timedelta(days=366 * 3):
        raise BadUserInput("A custom period is at most three years.", field="dateTo")
    return date_from, date_to


def _check_viewer(viewer: Viewer, tenant_id: str | None) -> None:
    if tenant_id is None:
        viewer.require_role(Role.OPERATOR)
    else:
        viewer.require_staff(tenant_id, Role.ORGANIZER)


async def sales_stats(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str | None,
    period: StatsPeriod,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    tz: str = DEFAULT_TIMEZONE,
) -> SalesFigures:
    """The tenant's figures (``tenant_id=None``: the whole platform, OPERATOR only)."""
    _check_viewer(viewer, tenant_id)
    now = utcnow()
    starts, ends = period_bounds(period, now=now, tz=tz, date_from=date_from, date_to=date_to)

    def scoped(query):  # type: ignore[no-untyped-def]
        query = query.where(col(Order.status).in_(SOLD_STATUSES), col(Order.paid_at) < ends)
        if starts is not None:
            query = query.where(col(Order.paid_at) >= starts)
        if tenant_id is not None:
            query = query.where(Order.tenant_id == tenant_id)
        return query

    async with db.read() as session:
        orders, gross, refunded, currency = (
            await session.exec(
                scoped(
                    select(
                        func.count(col(Order.id)),
                        func.coalesce(func.sum(Order.total_minor), 0),
                        func.coalesce(func.sum(Order.refunded_minor), 0),
                        func.max(Order.currency),
                    )
                )
            )
        ).one()
        tickets = (
            await session.exec(
                scoped(
                    select(func.count(col(OrderItem.id)))
                    .select_from(OrderItem)
                    .join(Order, col(Order.id) == col(OrderItem.order_id))
                    .where(col(OrderItem.status) != ItemStatus.REFUNDED)
                )
            )
        ).one()
        first_paid = select(Order.user_id, func.min(Order.paid_at).label("first")).where(
            col(Order.status).in_(SOLD_STATUSES), col(Order.user_id).is_not(None)
        )
        if tenant_id is not None:
            first_paid = first_paid.where(Order.tenant_id == tenant_id)
        firsts = first_paid.group_by(col(Order.user_id)).subquery()
        newcomers = select(func.count()).select_from(firsts).where(firsts.c.first < ends)
        if starts is not None:
            newcomers = newcomers.where(firsts.c.first >= starts)
        new_customers = (await session.exec(newcomers)).one()
        sessions = await _sell_through(session, tenant_id, starts, ends, now)
    return SalesFigures(
        tenant_id=tenant_id,
        period=period,
        starts=starts,
        ends=ends,
        currency=currency or "CNY",
        orders=int(orders),
        tickets_sold=int(tickets),
        gross_minor=int(gross),
        refunded_minor=int(refunded),
        new_customers=int(new_customers),
        sessions=sessions,
    )


async def _sell_through(
    session: AsyncSession,
    tenant_id: str | None,
    starts: datetime | None,
    ends: datetime,
    now: datetime,
) -> list[SessionSellThrough]:
    query = select(EventSession, Event).join(Event, col(Event.id) == col(EventSession.event_id))
    begins = col(EventSession.starts_at)
    if tenant_id is not None:
        query = query.where(EventSession.tenant_id == tenant_id)
    if starts is None or starts <= now <= ends:
        query = query.where(begins >= now - timedelta(days=1))
    else:
        query = query.where(begins >= starts, begins < ends)
    rows = (await session.exec(query.order_by(begins).limit(MAX_SESSIONS))).all()
    if not rows:
        return []
    session_ids = [performance.id for performance, _event in rows]
    tiers = (
        await session.exec(
            select(TicketTier)
            .where(col(TicketTier.session_id).in_(session_ids))
            .order_by(col(TicketTier.sort_order), col(TicketTier.id))
        )
    ).all()
    sold_rows = (
        await session.exec(
            select(OrderItem.tier_id, func.count(col(OrderItem.id)))
            .join(Order, col(Order.id) == col(OrderItem.order_id))
            .where(
                col(OrderItem.session_id).in_(session_ids),
                col(OrderItem.live).is_(True),
                col(Order.status) != OrderStatus.PENDING_PAYMENT,
            )
            .group_by(col(OrderItem.tier_id))
        )
    ).all()
    sold = dict(sold_rows)
    by_session: dict[str, list[TierSellThrough]] = defaultdict(list)
    for tier in tiers:
        by_session[tier.session_id].append(
            TierSellThrough(tier.id, tier.name, int(sold.get(tier.id, 0)), tier.capacity)
        )
    return [
        SessionSellThrough(
            performance.id, event.id, event.title, performance.starts_at, by_session[performance.id]
        )
        for performance, event in rows
    ]


SALES_TOPICS = frozenset({"order.paid", "refund.completed", "order.refunded"})


async def announce_sale(broker: Broker, event: OutboxEvent) -> None:
    """Tell ``salesDashboard`` subscribers of the event's tenant (and operators) to refresh."""
    message = orjson.dumps({"topic": event.topic, "tenantId": event.tenant_id}).decode()
    if event.tenant_id:
        await broker.publish(channels.tenant_sales(event.tenant_id), message)
    await broker.publish(channels.tenant_sales("*"), message)
