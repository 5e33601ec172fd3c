"""Reading orders: a customer's list, a tenant's list (back office)."""

from __future__ import annotations

from sqlmodel import col, func, select

from boxoffice.db import Database
from boxoffice.models.orders import Order, OrderStatus
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
