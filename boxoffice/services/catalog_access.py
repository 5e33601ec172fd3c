"""Who may read and write catalog objects.

Writes: ORGANIZER staff of the owning tenant, or an OPERATOR. Seat maps may also be drawn by
AGENT users; for now an agent may draw for any tenant (per-tenant agent grants do not exist
yet). Staff asking for another tenant's object get NOT_FOUND, as if it did not exist.

Reads: published events, with their sessions, tiers and seat maps, are public; DRAFT events
only to their tenant's staff and to operators.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel, col
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.errors import NotFound
from boxoffice.models.events import Event, EventStatus
from boxoffice.models.identity import TENANT_ROLES, Role
from boxoffice.services.viewer import Viewer

M = TypeVar("M", bound=SQLModel)

_NAMES = {"EventSession": "session", "TicketTier": "ticket tier", "SeatMap": "seat map"}


def _not_found(model: type[SQLModel], field: str | None) -> NotFound:
    name = _NAMES.get(model.__name__, model.__name__.lower())
    return NotFound(f"No such {name}.", field=field)


def require_writer(viewer: Viewer) -> str:
    """Anyone who may write some catalog (FORBIDDEN for customers, gate staff, anonymous)."""
    return viewer.require_role(Role.ORGANIZER, Role.OPERATOR)


def require_tenant_writer(viewer: Viewer, tenant_id: str) -> str:
    require_writer(viewer)
    return viewer.require_staff(tenant_id, Role.ORGANIZER)


def is_agent(viewer: Viewer) -> bool:
    return Role.AGENT in viewer.roles


def require_seat_map_writer(viewer: Viewer, tenant_id: str) -> str:
    user_id = viewer.require_role(Role.ORGANIZER, Role.OPERATOR, Role.AGENT)
    if is_agent(viewer):
        return user_id
    return viewer.require_staff(tenant_id, Role.ORGANIZER)


def sees_drafts_of(viewer: Viewer, tenant_id: str) -> bool:
    return viewer.can_staff(tenant_id, *TENANT_ROLES)


def can_see_event(viewer: Viewer, event: Event) -> bool:
    return event.status != EventStatus.DRAFT or sees_drafts_of(viewer, event.tenant_id)


def visible_events_condition(viewer: Viewer) -> ColumnElement[bool] | None:
    """The SQL form of ``can_see_event`` (None: the viewer sees every event)."""
    if viewer.is_operator:
        return None
    own = sorted(viewer.tenants_with(*TENANT_ROLES))
    public = col(Event.status) != EventStatus.DRAFT
    return or_(public, col(Event.tenant_id).in_(own)) if own else public


async def get_for_write(
    session: AsyncSession,
    model: type[M],
    object_id: str,
    *,
    viewer: Viewer,
    field: str | None = None,
    lock: bool = False,
) -> M:
    """The row, if the viewer may write its tenant's catalog; NOT_FOUND (naming ``field``
    when the id came from an input field) if it does not exist or belongs to another tenant."""
    require_writer(viewer)
    found: Any = await session.get(model, object_id, with_for_update=lock)
    if found is None:
        raise _not_found(model, field)
    tenant_id: str = found.tenant_id
    try:
        viewer.require_staff(tenant_id, Role.ORGANIZER)
    except NotFound as exc:
        raise _not_found(model, field) from exc
    return found
