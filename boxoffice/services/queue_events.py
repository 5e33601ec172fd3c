"""The waiting room's view of the catalog: which events sell through it, when their line
opens, how fast it admits, and whether anything is left to sell.

An event sells through the waiting room while it has a *queue session*: a session with
``queueEnabled``, not cancelled, whose sale has not closed. Its line

- opens at the earliest sale start of its queue sessions (arrivals before that are drawn at
  random when it opens);
- admits at its rate: the smallest ``queueAdmitPerSecond`` override among its queue sessions,
  or ``BOXOFFICE_QUEUE_ADMIT_PER_SECOND`` when none has one. Organizers set the rate of a
  whole event with ``set_queue_rate`` (every session of the event, so the sessions agree);
- is *sold out* once its sale has opened and every ACTIVE tier of every queue session has 0
  available in the seat ledger (held seats count as gone). The ticker then closes the line
  (the waiting are told SOLD_OUT) and reopens it when seats come back (holds lapse, orders are
  cancelled). A queue session without an active tier counts as nothing to sell, not as sold
  out: an event with no active tier at all is never closed for that.

``QueueEventCache`` keeps the per-event answers (what ``joinQueue``, ``queueStatus`` and the
subscription ask on every call) in memory for a few seconds, dropped with the catalog's
invalidations. ``QueueCatalog`` is the admission ticker's ``schedules`` source: one query per
tick, plus one ledger counter read per queue session of the events whose sale is open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select

from boxoffice.backends.seat_ledger import LedgerNotLoaded, SeatLedger
from boxoffice.clock import as_utc, utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.models.events import (
    Event,
    EventSession,
    EventStatus,
    SessionStatus,
    TierStatus,
)
from boxoffice.services import audit, inventory, validation
from boxoffice.services.catalog_access import get_for_write, sees_drafts_of
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.event_sessions import MAX_ADMIT_PER_SECOND, SESSION_FIELDS
from boxoffice.services.events import lock_event, require_editable
from boxoffice.services.queue_admission import QueueSchedule
from boxoffice.services.session_rules import SessionRulesCache
from boxoffice.services.viewer import Viewer

log = logging.getLogger("boxoffice.queue")

TTL_SECONDS = 5.0
SCHEDULE_HORIZON = timedelta(hours=6)  # lines are ticked from this long before the sale opens
CLOSED_EVENT_STATUSES = frozenset({EventStatus.DRAFT, EventStatus.CANCELLED, EventStatus.ENDED})


@dataclass(frozen=True, slots=True)
class QueueSession:
    session_id: str
    sale_starts_at: datetime
    sale_closes_at: datetime
    admit_per_second: int | None  # the organizer's override


@dataclass(frozen=True)
class QueueEvent:
    """An event with its queue sessions (queue-enabled, not cancelled; maybe closed)."""

    event_id: str
    tenant_id: str
    title: str
    status: EventStatus  # as stored
    ends_at: datetime | None
    sessions: tuple[QueueSession, ...]
    loaded_at: float = field(default_factory=time.monotonic)

    def selling(self, now: datetime) -> list[QueueSession]:
        """The queue sessions whose sale has not closed by ``now``."""
        return [s for s in self.sessions if s.sale_closes_at > now]

    def is_live(self, now: datetime) -> bool:
        """Published, neither cancelled nor over."""
        if self.status in CLOSED_EVENT_STATUSES:
            return False
        return self.ends_at is None or self.ends_at > now

    def opens_at(self, now: datetime) -> datetime | None:
        """When the line opens: the earliest sale start of the selling queue sessions."""
        selling = self.selling(now)
        return min(s.sale_starts_at for s in selling) if selling else None

    def admit_per_second(self, default: int, now: datetime | None = None) -> int:
        """The line's rate: the smallest override of the selling queue sessions, else
        ``default``."""
        overrides = [
            s.admit_per_second for s in self.selling(now or utcnow()) if s.admit_per_second
        ]
        return min(overrides) if overrides else default


async def read_queue_events(
    db: Database,
    *,
    event_ids: Sequence[str] | None = None,
    opening_before: datetime | None = None,
    now: datetime | None = None,
) -> dict[str, QueueEvent]:
    """Events with their queue sessions, in one query.

    With ``event_ids``: those events (unknown ones left out), with or without queue sessions.
    With ``opening_before``: the live events having a queue session whose sale opens by then
    and has not closed at ``now``.
    """
    now = now or utcnow()
    query = select(Event, EventSession).join(
        EventSession,
        (col(EventSession.event_id) == col(Event.id))
        & col(EventSession.queue_enabled)
        & (col(EventSession.status) != SessionStatus.CANCELLED),
        isouter=event_ids is not None,
    )
    if event_ids is not None:
        query = query.where(col(Event.id).in_(list(event_ids)))
    if opening_before is not None:
        closes = func.coalesce(col(EventSession.sale_ends_at), col(EventSession.starts_at))
        query = query.where(
            col(Event.status).in_(
                (EventStatus.UPCOMING, EventStatus.ON_SALE, EventStatus.SOLD_OUT)
            ),
            col(EventSession.sale_starts_at) <= opening_before,
            closes > now,
        )
    async with db.read() as session:
        rows = (await session.exec(query.order_by(col(Event.id)))).all()
    found: dict[str, tuple[Event, list[QueueSession]]] = {}
    for event, performance in rows:
        _event, sessions = found.setdefault(event.id, (event, []))
        if performance is not None:
            sessions.append(
                QueueSession(
                    session_id=performance.id,
                    sale_starts_at=as_utc(performance.sale_starts_at),
                    sale_closes_at=as_utc(performance.sale_closes_at),
                    admit_per_second=performance.queue_admit_per_second,
                )
            )
    return {
        event_id: QueueEvent(
            event_id=event.id,
            tenant_id=event.tenant_id,
            title=event.title,
            status=EventStatus(event.status),
            ends_at=as_utc(event.ends_at) if event.ends_at else None,
            sessions=tuple(sorted(sessions, key=lambda s: (s.sale_starts_at, s.session_id))),
        )
        for event_id, (event, sessions) in found.items()
    }


def require_visible(event: QueueEvent | None, *, viewer: Viewer) -> QueueEvent:
    """Raises ``NotFound`` (eventId) for an unknown event or a draft the viewer may not see."""
    if event is None or (
        event.status == EventStatus.DRAFT and not sees_drafts_of(viewer, event.tenant_id)
    ):
        raise NotFound("No such event.", field="eventId")
    return event


def require_joinable(
    event: QueueEvent | None, *, viewer: Viewer, now: datetime | None = None
) -> QueueEvent:
    """The event, if its line takes arrivals now.

    Raises ``NotFound`` (eventId: unknown, or a draft the viewer may not see) and
    ``BadUserInput`` (eventId, ``reason`` NOT_ON_SALE: draft, cancelled or over;
    QUEUE_NOT_ENABLED: no queue session is selling).
    """
    now = now or utcnow()
    event = require_visible(event, viewer=viewer)
    if not event.is_live(now):
        raise BadUserInput("This event is not on sale.", field="eventId", reason="NOT_ON_SALE")
    if not event.selling(now):
        raise BadUserInput(
            "This event does not sell through a waiting room.",
            field="eventId",
            reason="QUEUE_NOT_ENABLED",
        )
    return event


class QueueEventCache:
    """Per process: ``QueueEvent`` by id for ``TTL_SECONDS``; concurrent misses share one
    read. Follows the catalog cache's invalidations (``drop_events`` / ``clear``)."""

    def __init__(self, db: Database, *, ttl_seconds: float = TTL_SECONDS) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._events: dict[str, QueueEvent | None] = {}
        self._loaded_at: dict[str, float] = {}
        self._loading: dict[str, asyncio.Future[QueueEvent | None]] = {}

    async def find(self, event_id: str) -> QueueEvent | None:
        """The event, or None when there is no such event."""
        loaded = self._loaded_at.get(event_id)
        if loaded is not None and time.monotonic() - loaded < self._ttl:
            return self._events[event_id]
        pending = self._loading.get(event_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[QueueEvent | None] = asyncio.get_running_loop().create_future()
        self._loading[event_id] = future
        try:
            found = (await read_queue_events(self._db, event_ids=[event_id])).get(event_id)
            if self._loading.get(event_id) is future:  # not dropped meanwhile
                self._events[event_id] = found
                self._loaded_at[event_id] = time.monotonic()
            future.set_result(found)
            return found
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waits
            raise
        finally:
            if self._loading.get(event_id) is future:
                del self._loading[event_id]

    async def get(self, event_id: str, *, viewer: Viewer) -> QueueEvent:
        """Raises ``NotFound`` (eventId) for an unknown event or a draft the viewer may not
        see."""
        return require_visible(await self.find(event_id), viewer=viewer)

    def drop_events(self, event_ids: set[str]) -> None:
        for event_id in event_ids:
            self._events.pop(event_id, None)
            self._loaded_at.pop(event_id, None)
            self._loading.pop(event_id, None)

    def clear(self) -> None:
        self._events.clear()
        self._loaded_at.clear()
        self._loading.clear()

    def follow(self, event_ids: set[str] | None) -> None:
        """A ``CatalogCache.follow`` callback."""
        if event_ids is None:
            self.clear()
        else:
            self.drop_events(event_ids)


async def public_units(
    *, db: Database, ledger: SeatLedger, rules_cache: SessionRulesCache, session_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Units the public can hold now, per session and tier, from the ledger's counters (no
    seat list is read); sessions whose ledger is not loaded are loaded from the database."""
    out: dict[str, dict[str, int]] = {}
    missing = []
    for session_id in session_ids:
        try:
            counts = await ledger.counts(session_id)
        except LedgerNotLoaded:
            counts = {}
        if not counts:
            missing.append(session_id)
            continue
        out[session_id] = {t: max(0, c.free - c.set_aside) for t, c in counts.items()}
    if missing:
        loaded = await inventory.snapshots(
            db=db, ledger=ledger, rules_cache=rules_cache, session_ids=missing
        )
        out.update({sid: dict(snapshot.available) for sid, snapshot in loaded.items()})
    return out


async def sold_out(
    *,
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    session_ids: Sequence[str],
) -> bool:
    """True when the sessions have at least one ACTIVE tier and none has anything left."""
    if not session_ids:
        return False
    available = await public_units(
        db=db, ledger=ledger, rules_cache=rules_cache, session_ids=session_ids
    )
    rules = await rules_cache.get_many(session_ids)
    active = [
        available[sid].get(tier_id, 0)
        for sid in session_ids
        if sid in rules
        for tier_id, tier in rules[sid].tiers.items()
        if tier.status == TierStatus.ACTIVE
    ]
    return bool(active) and not any(active)


class QueueCatalog:
    """The admission ticker's ``schedules`` source (call it). ``event(event_id)`` answers the
    events of the last call (for what the ticker's caller tells admitted users)."""

    def __init__(
        self,
        *,
        db: Database,
        ledger: SeatLedger,
        rules_cache: SessionRulesCache,
        default_rate: int,
        horizon: timedelta = SCHEDULE_HORIZON,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.rules_cache = rules_cache
        self.default_rate = default_rate
        self.horizon = horizon
        self.clock = clock
        self._events: dict[str, QueueEvent] = {}

    def event(self, event_id: str) -> QueueEvent | None:
        return self._events.get(event_id)

    async def __call__(self) -> list[QueueSchedule]:
        now = self.clock()
        events = await read_queue_events(self.db, opening_before=now + self.horizon, now=now)
        self._events = events
        schedules = []
        for event in events.values():
            if not event.is_live(now):
                continue
            opens_at = event.opens_at(now)
            if opens_at is None:
                continue
            gone = False
            if opens_at <= now:
                try:
                    gone = await sold_out(
                        db=self.db,
                        ledger=self.ledger,
                        rules_cache=self.rules_cache,
                        session_ids=[s.session_id for s in event.selling(now)],
                    )
                except NotFound:
                    log.warning("a queue session of %s vanished; not closing", event.event_id)
            schedules.append(
                QueueSchedule(
                    event_id=event.event_id,
                    opens_at=opens_at,
                    admit_per_second=event.admit_per_second(self.default_rate, now),
                    sold_out=gone,
                )
            )
        return schedules


async def set_queue_rate(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    event_id: str,
    admit_per_second: int | None,
) -> Event:
    """ORGANIZER of the event's tenant (or OPERATOR): admit ``admit_per_second`` users per
    second into the event's line, by setting the override of every session of the event;
    None clears the overrides (the platform default applies). Audited per session.

    Raises ``Forbidden``, ``NotFound`` (eventId; also another tenant's event),
    ``BadUserInput`` (admitPerSecond; eventId when the event is cancelled or over).
    """
    if admit_per_second is not None:
        validation.positive_int(
            admit_per_second, field="admitPerSecond", maximum=MAX_ADMIT_PER_SECOND
        )
    async with db.write() as session:
        found = await get_for_write(session, Event, event_id, viewer=viewer, field="eventId")
        event = await lock_event(session, found.id)
        require_editable(event, field="eventId")
        performances = (
            await session.exec(select(EventSession).where(EventSession.event_id == event.id))
        ).all()
        now = utcnow()
        for performance in performances:
            if performance.queue_admit_per_second == admit_per_second:
                continue
            before = audit.snapshot(performance, SESSION_FIELDS)
            performance.queue_admit_per_second = admit_per_second
            performance.updated_at = now
            session.add(performance)
            audit.record(
                session,
                viewer=viewer,
                action="session.update",
                target_type="Session",
                target_id=performance.id,
                tenant_id=performance.tenant_id,
                before=before,
                after=audit.snapshot(performance, SESSION_FIELDS),
            )
    await cache.invalidate(event_ids=[event.id], home=False)
    return event


__all__ = [
    "QueueCatalog",
    "QueueEvent",
    "QueueEventCache",
    "QueueSession",
    "public_units",
    "read_queue_events",
    "require_joinable",
    "require_visible",
    "set_queue_rate",
    "sold_out",
]
