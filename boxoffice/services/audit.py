"""The audit trail: every admin mutation writes one entry in its own transaction."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from datetime import date
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.models.identity import AuditEntry
from boxoffice.services.viewer import Viewer

request_id_var: ContextVar[str | None] = ContextVar("boxoffice_request_id", default=None)


def snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """A JSON-safe picture of some fields of a row, for before/after columns."""
    out: dict[str, Any] = {}
    for name in fields:
        value = getattr(obj, name, None)
        out[name] = value.isoformat() if isinstance(value, date) else value
    return out


def record(
    session: AsyncSession,
    *,
    viewer: Viewer | None,
    action: str,
    target_type: str,
    target_id: str | None,
    tenant_id: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        tenant_id=tenant_id,
        actor_id=viewer.user_id if viewer else None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
        ip=viewer.ip if viewer else None,
        request_id=request_id_var.get(),
    )
    session.add(entry)
    return entry
