"""Sessions (场次): the performances of an event, with their sale windows.

Time rules (each failure names its field): a session ends after it starts (``endsAt``); its
sale starts before it ends (``saleStartsAt``); a given sale end lies after the sale start and
no later than the session's end (``saleEndsAt``); without a sale end the sale runs until the
session starts, so the sale must then start before the session does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, CatalogStateInvalid, NotFound
from boxoffice.models.events import (
    Event,
    EventSession,
    EventStatus,
    SessionSeat,
    TicketTier,
)
from boxoffice.models.venues import SeatMap
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import can_see_event, get_for_write
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.events import (
    MAX_SESSIONS_PER_EVENT,
    lock_event,
    refresh_aggregates,
    require_editable,
)
from boxoffice.services.viewer import Viewer

SESSION_FIELDS = (
    "starts_at",
    "ends_at",
    "sale_starts_at",
    "sale_ends_at",
    "queue_enabled",
    "queue_admit_per_second",
    "purchase_limit",
    "seat_map_id",
    "status",
)
MAX_ADMIT_PER_SECOND = 100_000
MAX_PURCHASE_LIMIT = 100


@dataclass(frozen=True)
class SessionTimes:
    starts_at: datetime
    ends_at: datetime
    sale_starts_at: datetime
    sale_ends_at: datetime | None

    def check(self) -> SessionTimes:
        starts = validation.aware(self.starts_at, field="startsAt")
        ends = validation.aware(self.ends_at, field="endsAt")
        sale_starts = validation.aware(self.sale_starts_at, field="saleStartsAt")
        sale_ends = (
            validation.aware(self.sale_ends_at, field="saleEndsAt")
            if self.sale_ends_at is not None
            else None
        )
        if ends <= starts:
            raise BadUserInput("A session must end after it starts.", field="endsAt")
        if sale_starts >= ends:
            raise BadUserInput("The sale must start before the session ends.", field="saleStartsAt")
        if sale_ends is not None:
            if sale_ends > ends:
                raise BadUserInput(
                    "The sale must end no later than the session ends.", field="saleEndsAt"
                )
            if sale_ends <= sale_starts:
                raise BadUserInput("The sale must end after it starts.", field="saleEndsAt")
        elif sale_starts >= starts:
            raise BadUserInput(
                "The sale runs until the session starts, so it must start before it "
                "(or give saleEndsAt).",
                field="saleStartsAt",
            )
        return self


def _limits(admit_per_second: int | None, purchase_limit: int | None) -> None:
    if admit_per_second is not None:
        validation.positive_int(
            admit_per_second, field="queueAdmitPerSecond", maximum=MAX_ADMIT_PER_SECOND
        )
    if purchase_limit is not None:
        validation.positive_int(purchase_limit, field="purchaseLimit", maximum=MAX_PURCHASE_LIMIT)


async def _seat_map_for(session: AsyncSession, seat_map_id: str, event: Event) -> SeatMap:
    seat_map = await session.get(SeatMap, seat_map_id)
    if seat_map is None or seat_map.tenant_id != event.tenant_id:
        raise NotFound("No such seat map.", field="seatMapId")
    if seat_map.venue_id != event.venue_id:
        raise BadUserInput("The seat map is of another venue than the event's.", field="seatMapId")
    return seat_map


async def create_session(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    event_id: str,
    starts_at: datetime,
    ends_at: datetime,
    sale_starts_at: datetime,
    sale_ends_at: datetime | None = None,
    seat_map_id: str | None = None,
    queue_enabled: bool = False,
    queue_admit_per_second: int | None = None,
    purchase_limit: int | None = None,
) -> EventSession:
    times = SessionTimes(starts_at, ends_at, sale_starts_at, sale_ends_at).check()
    _limits(queue_admit_per_second, purchase_limit)
    async with db.write() as session:
        event = await get_for_write(
            session, Event, event_id, viewer=viewer, field="eventId", lock=True
        )
        require_editable(event, field="eventId")
        if seat_map_id is not None:
            await _seat_map_for(session, seat_map_id, event)
        count = (
            await session.exec(
                select(func.count())
                .select_from(EventSession)
                .where(EventSession.event_id == event.id)
            )
        ).one()
        if count >= MAX_SESSIONS_PER_EVENT:
            raise BadUserInput(
                f"An event has at most {MAX_SESSIONS_PER_EVENT} sessions.", field="eventId"
            )
        created = EventSession(
            tenant_id=event.tenant_id,
            event_id=event.id,
            starts_at=times.starts_at,
            ends_at=times.ends_at,
            sale_starts_at=times.sale_starts_at,
            sale_ends_at=times.sale_ends_at,
            seat_map_id=seat_map_id,
            queue_enabled=queue_enabled,
            queue_admit_per_second=queue_admit_per_second,
            purchase_limit=purchase_limit,
        )
        session.add(created)
        await session.flush()
        await refresh_aggregates(session, event)
        audit.record(
            session,
            viewer=viewer,
            action="session.create",
            target_type="Session",
            target_id=created.id,
            tenant_id=event.tenant_id,
            after=audit.snapshot(created, SESSION_FIELDS),
        )
    await cache.invalidate(event_ids=[event.id])
    return created


async def update_session(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    session_id: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    sale_starts_at: datetime | None = None,
    sale_ends_at: datetime | None = None,
    clear_sale_ends_at: bool = False,
    seat_map_id: str | None = None,
    queue_enabled: bool | None = None,
    queue_admit_per_second: int | None = None,
    purchase_limit: int | None = None,
) -> EventSession:
    """Change a session (None leaves a field as it is). The seat map can change only while
    no seated tier sells it."""
    _limits(queue_admit_per_second, purchase_limit)
    async with db.write() as session:
        found = await get_for_write(session, EventSession, session_id, viewer=viewer)
        event = await lock_event(session, found.event_id)
        await session.refresh(found)
        require_editable(event)
        before = audit.snapshot(found, SESSION_FIELDS)
        times = SessionTimes(
            starts_at or found.starts_at,
            ends_at or found.ends_at,
            sale_starts_at or found.sale_starts_at,
            None if clear_sale_ends_at else (sale_ends_at or found.sale_ends_at),
        ).check()
        found.starts_at, found.ends_at = times.starts_at, times.ends_at
        found.sale_starts_at, found.sale_ends_at = times.sale_starts_at, times.sale_ends_at
        if seat_map_id is not None and seat_map_id != found.seat_map_id:
            await _seat_map_for(session, seat_map_id, event)
            seated = await session.exec(
                select(TicketTier.id).where(
                    TicketTier.session_id == found.id, col(TicketTier.seated)
                )
            )
            if seated.first() is not None:
                raise BadUserInput(
                    "Seated tiers sell the current seat map; delete them first.",
                    field="seatMapId",
                )
            await session.exec(delete(SessionSeat).where(col(SessionSeat.session_id) == found.id))
            found.seat_map_id = seat_map_id
        if queue_enabled is not None:
            found.queue_enabled = queue_enabled
        if queue_admit_per_second is not None:
            found.queue_admit_per_second = queue_admit_per_second
        if purchase_limit is not None:
            found.purchase_limit = purchase_limit
        found.updated_at = utcnow()
        session.add(found)
        await session.flush()
        await refresh_aggregates(session, event)
        audit.record(
            session,
            viewer=viewer,
            action="session.update",
            target_type="Session",
            target_id=found.id,
            tenant_id=found.tenant_id,
            before=before,
            after=audit.snapshot(found, SESSION_FIELDS),
        )
    await cache.invalidate(event_ids=[found.event_id], sessions=[found.id])
    return found


async def delete_session(
    *, db: Database, cache: CatalogCache, viewer: Viewer, session_id: str
) -> None:
    """Delete a session with its tiers. Refused when a tier has sales, and for the last
    session of a published event (cancel the event instead)."""
    async with db.write() as session:
        found = await get_for_write(session, EventSession, session_id, viewer=viewer)
        event = await lock_event(session, found.event_id)
        await session.refresh(found)
        require_editable(event)
        sold = await session.exec(
            select(TicketTier.id).where(TicketTier.session_id == found.id, TicketTier.reserved > 0)
        )
        if sold.first() is not None:
            raise CatalogStateInvalid("A tier of this session has sales.", field="id")
        if event.status != EventStatus.DRAFT:
            others = await session.exec(
                select(EventSession.id).where(
                    EventSession.event_id == event.id, EventSession.id != found.id
                )
            )
            if others.first() is None:
                raise CatalogStateInvalid(
                    "A published event keeps at least one session; cancel the event instead.",
                    field="id",
                )
        before = audit.snapshot(found, SESSION_FIELDS)
        await session.exec(delete(SessionSeat).where(col(SessionSeat.session_id) == found.id))
        await session.exec(delete(TicketTier).where(col(TicketTier.session_id) == found.id))
        await session.delete(found)
        await session.flush()
        await refresh_aggregates(session, event)
        audit.record(
            session,
            viewer=viewer,
            action="session.delete",
            target_type="Session",
            target_id=found.id,
            tenant_id=found.tenant_id,
            before=before,
        )
    await cache.invalidate(event_ids=[found.event_id])


async def get_session(
    *, db: Database, viewer: Viewer, session_id: str
) -> tuple[EventSession, Event]:
    """A session with its event, if the viewer may see the event."""
    async with db.read() as session:
        row = (
            await session.exec(
                select(EventSession, Event)
                .join(Event, col(Event.id) == col(EventSession.event_id))
                .where(EventSession.id == session_id)
            )
        ).first()
    if row is None or not can_see_event(viewer, row[1]):
        raise NotFound("No such session.")
    return row[0], row[1]
