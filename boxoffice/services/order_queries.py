"""Reading orders: a customer's list, a tenant's list (back office)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlmodel import col, func, select

from boxoffice import pii
from boxoffice.db import Database
from boxoffice.models.identity import Role
from boxoffice.models.orders import Order, OrderStatus
from boxoffice.services import validation
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer

NEWEST_FIRST: list[SortKey[Order]] = [
    SortKey(col(Order.created_at), lambda o: o.created_at, kind="datetime", descending=True),
    SortKey(col(Order.id), lambda o: o.id, descending=True),
]


async def my_orders(
    *,
    db: Database,
    viewer: Viewer,
    status: OrderStatus | None,
    first: int | None,
    after: str | None,
) -> Page[Order]:
    user_id = viewer.require_user()
    size = page_size(first)
    query = select(Order).where(Order.user_id == user_id)
    if status is not None:
        query = query.where(Order.status == status)
    query = apply_keyset(query, NEWEST_FIRST, after=after)
    async with db.read() as session:
        rows = (await session.exec(query.limit(size + 1))).all()
    return Page.from_rows(rows, NEWEST_FIRST, size)


async def count_my_orders(*, db: Database, viewer: Viewer, status: OrderStatus | None) -> int:
    user_id = viewer.require_user()
    query = select(func.count()).select_from(Order).where(Order.user_id == user_id)
    if status is not None:
        query = query.where(Order.status == status)
    async with db.read() as session:
        return int((await session.exec(query)).one())


async def merchant_orders(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str,
    status: OrderStatus | None = None,
    event_id: str | None = None,
    session_id: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    buyer_phone: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> tuple[Page[Order], Callable[[], Awaitable[int]]]:
    """A tenant's orders, newest first, for its staff (ORGANIZER, CHECKIN) and operators;
    another tenant's staff get NOT_FOUND. Returns the page and a lazy total."""
    viewer.require_staff(tenant_id, Role.ORGANIZER, Role.CHECKIN)
    size = page_size(first)
    conditions = [col(Order.tenant_id) == tenant_id]
    if status is not None:
        conditions.append(col(Order.status) == status)
    if event_id is not None:
        conditions.append(col(Order.event_id) == event_id)
    if session_id is not None:
        conditions.append(col(Order.session_id) == session_id)
    if date_from is not None:
        conditions.append(col(Order.created_at) >= date_from)
    if date_to is not None:
        conditions.append(col(Order.created_at) < date_to)
    if buyer_phone:
        phone = validation.phone(buyer_phone, field="buyerPhone")
        conditions.append(col(Order.contact_phone_hash) == pii.phone_hash(phone))
    query = apply_keyset(select(Order).where(*conditions), NEWEST_FIRST, after=after)
    async with db.read() as session:
        rows = (await session.exec(query.limit(size + 1))).all()

    async def total() -> int:
        async with db.read() as session:
            return int(
                (
                    await session.exec(select(func.count()).select_from(Order).where(*conditions))
                ).one()
            )

    return Page.from_rows(rows, NEWEST_FIRST, size), total


def sees_buyer_phone(viewer: Viewer, order: Order) -> bool:
    """Buyers' contact names and phone numbers are personal data: the buyer, the tenant's
    organizers and operators see them whole; gate staff and agents see them masked."""
    return viewer.user_id == order.user_id or viewer.can_staff(order.tenant_id, Role.ORGANIZER)
