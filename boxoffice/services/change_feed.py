"""The ``changes`` feed: a tenant's outbox events (the webhook topics) in order, from an
opaque cursor, so an integration that was down catches up without webhooks.

Events are read in ``seq`` order, but on PostgreSQL a transaction holding a lower ``seq`` may
commit after a higher one is visible (see ``services/outbox.py``). So the cursor holds two
things: ``base`` — every event at or below it was handed out or can no longer appear — and
``seen``, the events above ``base`` already handed out. ``base`` only passes events older than
the visibility horizon (a still-committing event is younger than that, and younger than every
settled event above it); recent events are handed out at once and remembered in ``seen`` until
``base`` passes them. Each event is handed out exactly once per chain of cursors.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlmodel import col, func, select

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, Forbidden
from boxoffice.models.identity import Role
from boxoffice.models.outbox import OutboxEvent
from boxoffice.services.outbox import VISIBILITY_SECONDS
from boxoffice.services.pagination import page_size
from boxoffice.services.viewer import Viewer
from boxoffice.services.webhooks import WEBHOOK_TOPICS

DEFAULT_PAGE = 50
MAX_PAGE = 200
MAX_SEEN = 500  # past this many recent events in a cursor, wait for them to settle
_VERSION = 1


@dataclass(frozen=True)
class ChangePage:
    events: list[OutboxEvent]
    cursor: str  # pass as ``since`` next time (also when ``events`` is empty)
    has_more: bool


def encode_cursor(base: int, seen: list[int]) -> str:
    raw = orjson.dumps([_VERSION, base, [s - base for s in seen]])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None) -> tuple[int, set[int]]:
    if not cursor:
        return 0, set()
    try:
        data = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadUserInput("The cursor is not valid.", field="since") from exc
    valid = (
        isinstance(data, list)
        and len(data) == 3
        and data[0] == _VERSION
        and _is_int(data[1])
        and data[1] >= 0
        and isinstance(data[2], list)
        and len(data[2]) <= MAX_SEEN + MAX_PAGE
        and all(_is_int(d) and d > 0 for d in data[2])
    )
    if not valid:
        raise BadUserInput("The cursor is not valid.", field="since")
    base = int(data[1])
    return base, {base + int(d) for d in data[2]}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _scope(viewer: Viewer, tenant_id: str | None) -> tuple[bool, str | None]:
    """(every tenant?, the tenant). Operators without a tenant read the whole platform."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    if tenant_id:
        viewer.require_staff(tenant_id, Role.ORGANIZER)
        return False, tenant_id
    if viewer.is_operator:
        return True, None
    mine = viewer.tenants_with(Role.ORGANIZER)
    if len(mine) == 1:
        return False, next(iter(mine))
    if not mine:
        raise Forbidden()
    raise BadUserInput("You work for several tenants: say which.", field="tenantId")


async def changes(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str | None = None,
    since: str | None = None,
    first: int | None = None,
    now: datetime | None = None,
) -> ChangePage:
    """ORGANIZER (their tenant) or OPERATOR: the events after ``since``, oldest first."""
    everyone, tenant = _scope(viewer, tenant_id)
    size = page_size(first, default=DEFAULT_PAGE, maximum=MAX_PAGE)
    base, seen = decode_cursor(since)
    horizon = (now or utcnow()) - timedelta(seconds=VISIBILITY_SECONDS)
    conditions: list[Any] = [
        col(OutboxEvent.seq) > base,
        col(OutboxEvent.topic).in_(WEBHOOK_TOPICS),
    ]
    if not everyone:
        conditions.append(col(OutboxEvent.tenant_id) == tenant)
    if seen:
        conditions.append(col(OutboxEvent.seq).not_in(sorted(seen)))
    settled_only = len(seen) >= MAX_SEEN
    if settled_only:
        conditions.append(col(OutboxEvent.created_at) < horizon)
    async with db.read() as session:
        rows = list(
            (
                await session.exec(
                    select(OutboxEvent)
                    .where(*conditions)
                    .order_by(col(OutboxEvent.seq))
                    .limit(size + 1)
                )
            ).all()
        )
        newest_settled = (
            await session.exec(
                select(func.max(OutboxEvent.seq)).where(col(OutboxEvent.created_at) < horizon)
            )
        ).one()
        newest = (await session.exec(select(func.max(OutboxEvent.seq)))).one()
    has_more = len(rows) > size
    events = rows[:size]
    if has_more:
        scanned = events[-1].seq or base
    else:
        scanned = (newest_settled if settled_only else newest) or base
    new_base = max(base, min(scanned, newest_settled or 0))
    handed = seen | {e.seq for e in events if e.seq is not None}
    kept = sorted(s for s in handed if s > new_base)
    return ChangePage(events=events, cursor=encode_cursor(new_base, kept), has_more=has_more)
