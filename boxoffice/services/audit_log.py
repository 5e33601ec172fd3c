"""Reading the audit trail: operators see everything, organizers their tenant's entries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlmodel import col, func, select

from boxoffice.db import Database
from boxoffice.models.identity import AuditEntry, Role
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer

NEWEST_FIRST: list[SortKey[AuditEntry]] = [
    SortKey(col(AuditEntry.created_at), lambda e: e.created_at, kind="datetime", descending=True),
    SortKey(col(AuditEntry.id), lambda e: e.id, descending=True),
]


async def audit_entries(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    target_id: str | None = None,
    date_from: datetime | None = None,
    date_to: datetime | None = None,
    first: int | None = None,
    after: str | None = None,
) -> tuple[Page[AuditEntry], Callable[[], Awaitable[int]]]:
    if tenant_id is None:
        viewer.require_role(Role.OPERATOR)
    else:
        viewer.require_staff(tenant_id, Role.ORGANIZER)
    size = page_size(first)
    conditions = []
    if tenant_id is not None:
        conditions.append(col(AuditEntry.tenant_id) == tenant_id)
    if actor_id is not None:
        conditions.append(col(AuditEntry.actor_id) == actor_id)
    if action is not None:
        conditions.append(col(AuditEntry.action) == action)
    if target_id is not None:
        conditions.append(col(AuditEntry.target_id) == target_id)
    if date_from is not None:
        conditions.append(col(AuditEntry.created_at) >= date_from)
    if date_to is not None:
        conditions.append(col(AuditEntry.created_at) < date_to)
    query = apply_keyset(select(AuditEntry).where(*conditions), NEWEST_FIRST, after=after)
    async with db.read() as session:
        rows = (await session.exec(query.limit(size + 1))).all()

    async def total() -> int:
        async with db.read() as session:
            count = select(func.count()).select_from(AuditEntry).where(*conditions)
            return int((await session.exec(count)).one())

    return Page.from_rows(rows, NEWEST_FIRST, size), total
