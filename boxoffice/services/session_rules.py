"""What the hold path needs to know about a session, read once and cached per process.

Holds are the hottest write path: they must not read the catalog from the database each time.
A ``SessionRules`` snapshot (sale window, queue flag, limits, tier prices, which seat is in
which tier) is cached per process and dropped at once when the catalog changes the session's
event (the catalog's invalidation messages; a lost pub/sub connection clears everything).

An entry is fresh for ``TTL_SECONDS``. After that, up to ``STALE_SECONDS``, it still answers at
once and is re-read in the background (once at a time): the age only matters for a change
whose invalidation never arrived, which is then seen one request later than with a hard
expiry. Why not wait on an expired entry: at an on-sale the first holds of each process came
seconds after anyone had read the session's rules, and all of them waited for one read of the
database (75 ms in the flash-sale bench) that the buyers' orders were keeping busy. For the
same reason a process warms an event's sessions when a buyer joins or watches its waiting
room (``warm_event``), before the sale opens.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select

from boxoffice.db import Database
from boxoffice.errors import NotFound
from boxoffice.models.events import (
    Event,
    EventSession,
    EventStatus,
    SessionSeat,
    SessionStatus,
    TicketTier,
    TierStatus,
)
from boxoffice.models.venues import Seat

log = logging.getLogger("boxoffice.inventory")

TTL_SECONDS = 5.0
STALE_SECONDS = 3600.0
SELLING_EVENT_STATUSES = frozenset(
    {EventStatus.ON_SALE, EventStatus.UPCOMING, EventStatus.SOLD_OUT}
)


@dataclass(frozen=True, slots=True)
class TierRule:
    tier_id: str
    name: str
    price_minor: int
    currency: str
    capacity: int
    seated: bool
    limit_per_order: int
    status: TierStatus
    sort_order: int = 0


@dataclass(frozen=True, slots=True)
class SeatInfo:
    seat_id: str
    tier_id: str | None
    section: str
    row: str
    number: int
    label: str
    x: float
    y: float
    blocked: bool
    ordinal: int = 0  # the seat map's drawing order


@dataclass(frozen=True)
class SessionRules:
    session_id: str
    event_id: str
    tenant_id: str
    event_status: EventStatus
    session_status: SessionStatus
    starts_at: datetime
    ends_at: datetime
    sale_starts_at: datetime
    sale_closes_at: datetime
    queue_enabled: bool
    purchase_limit: int | None
    tiers: dict[str, TierRule]
    seats: dict[str, SeatInfo] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.monotonic)

    @property
    def currency(self) -> str:
        return next(iter(self.tiers.values())).currency if self.tiers else "CNY"


async def read_rules_many(db: Database, session_ids: Sequence[str]) -> dict[str, SessionRules]:
    """Rules of several sessions in three queries; unknown sessions are left out."""
    if not session_ids:
        return {}
    async with db.read() as session:
        rows = (
            await session.exec(
                select(EventSession, Event)
                .join(Event, col(Event.id) == col(EventSession.event_id))
                .where(col(EventSession.id).in_(session_ids))
            )
        ).all()
        tiers = (
            await session.exec(
                select(TicketTier).where(col(TicketTier.session_id).in_(session_ids))
            )
        ).all()
        seats = (
            await session.exec(
                select(SessionSeat, Seat)
                .join(Seat, col(Seat.id) == col(SessionSeat.seat_id))
                .where(col(SessionSeat.session_id).in_(session_ids))
            )
        ).all()
    tiers_of: dict[str, dict[str, TierRule]] = defaultdict(dict)
    for t in tiers:
        tiers_of[t.session_id][t.id] = TierRule(
            tier_id=t.id,
            name=t.name,
            price_minor=t.price_minor,
            currency=t.currency,
            capacity=t.capacity,
            seated=t.seated,
            limit_per_order=t.limit_per_order,
            status=t.status,
            sort_order=t.sort_order,
        )
    seats_of: dict[str, dict[str, SeatInfo]] = defaultdict(dict)
    for placed, seat in seats:
        seats_of[placed.session_id][seat.id] = SeatInfo(
            seat_id=seat.id,
            tier_id=placed.tier_id,
            section=seat.section,
            row=seat.row_label,
            number=seat.number,
            label=seat.label,
            x=seat.x,
            y=seat.y,
            blocked=placed.blocked,
            ordinal=seat.ordinal,
        )
    return {
        performance.id: SessionRules(
            session_id=performance.id,
            event_id=event.id,
            tenant_id=event.tenant_id,
            event_status=event.status,
            session_status=performance.status,
            starts_at=performance.starts_at,
            ends_at=performance.ends_at,
            sale_starts_at=performance.sale_starts_at,
            sale_closes_at=performance.sale_closes_at,
            queue_enabled=performance.queue_enabled,
            purchase_limit=performance.purchase_limit,
            tiers=tiers_of[performance.id],
            seats=seats_of[performance.id],
        )
        for performance, event in rows
    }


async def read_rules(db: Database, session_id: str) -> SessionRules:
    """Raises ``NotFound`` for an unknown session."""
    found = await read_rules_many(db, [session_id])
    if session_id not in found:
        raise NotFound("No such session.", field="sessionId")
    return found[session_id]


class SessionRulesCache:
    def __init__(
        self,
        db: Database,
        *,
        ttl_seconds: float = TTL_SECONDS,
        stale_seconds: float = STALE_SECONDS,
    ) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._stale = max(stale_seconds, ttl_seconds)
        self._rules: dict[str, SessionRules] = {}
        self._loading: dict[str, asyncio.Future[SessionRules]] = {}
        self._failed_at: dict[str, float] = {}  # a background read failed: not again at once
        self._warmed: dict[str, float] = {}  # event id -> when its sessions were last read
        self._background: set[asyncio.Task[None]] = set()
        # bumped by every invalidation: a read that began before one does not fill the cache
        self._generation = 0
        # sessions whose seat ledger this process is loading right now (single flight)
        self.ledger_loads: dict[str, asyncio.Future[None]] = {}

    async def get(self, session_id: str) -> SessionRules:
        """The session's rules (``NotFound`` for an unknown session)."""
        cached = self._rules.get(session_id)
        if cached is not None:
            now = time.monotonic()
            age = now - cached.loaded_at
            if age < self._ttl:
                return cached
            if age < self._stale:
                failed = self._failed_at.get(session_id, -self._ttl)
                if session_id not in self._loading and now - failed >= self._ttl:
                    self._start_read(session_id)  # behind the request, not in front of it
                return cached
        pending = self._loading.get(session_id) or self._start_read(session_id)
        return await asyncio.shield(pending)

    def _start_read(self, session_id: str) -> asyncio.Future[SessionRules]:
        """One read of the session's rules at a time; its future is shared by every waiter."""
        future: asyncio.Future[SessionRules] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        self._behind(self._read(session_id, future))
        return future

    async def _read(self, session_id: str, future: asyncio.Future[SessionRules]) -> None:
        generation = self._generation
        try:
            rules = await read_rules(self._db, session_id)
        except asyncio.CancelledError:
            future.cancel()  # shutting down: the waiters are cancelled with it
            raise
        except BaseException as exc:
            if isinstance(exc, NotFound):
                self._rules.pop(session_id, None)
            elif session_id in self._rules:
                self._failed_at[session_id] = time.monotonic()
                log.warning("could not re-read the rules of session %s", session_id, exc_info=True)
            future.set_exception(exc)
            future.exception()  # retrieved: a background read may have nobody waiting
        else:
            if generation == self._generation:
                self._rules[session_id] = rules
                self._failed_at.pop(session_id, None)
            future.set_result(rules)
        finally:
            if self._loading.get(session_id) is future:
                del self._loading[session_id]

    def _behind(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def warm_event(self, event_id: str) -> None:
        """Read the event's sessions into the cache in the background, unless that was done
        within the last ``TTL_SECONDS`` (cheap to call on every join or watch)."""
        now = time.monotonic()
        if now - self._warmed.get(event_id, -self._ttl) < self._ttl:
            return
        self._warmed[event_id] = now
        self._behind(self._warm(event_id))

    async def _warm(self, event_id: str) -> None:
        generation = self._generation
        try:
            async with self._db.read() as session:
                ids = (
                    await session.exec(
                        select(col(EventSession.id)).where(EventSession.event_id == event_id)
                    )
                ).all()
            found = await read_rules_many(self._db, list(ids))
        except Exception:
            log.warning("could not warm the rules of event %s", event_id, exc_info=True)
            return
        if generation == self._generation:
            self._rules.update(found)

    async def settled(self) -> None:
        """Wait for the background reads under way (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def get_many(self, session_ids: Sequence[str]) -> dict[str, SessionRules]:
        """Rules of several sessions, reading the missing ones in one batch (unknown
        sessions are left out)."""
        now = time.monotonic()
        out = {
            sid: rules
            for sid in session_ids
            if (rules := self._rules.get(sid)) is not None and now - rules.loaded_at < self._ttl
        }
        missing = [sid for sid in session_ids if sid not in out]
        if missing:
            generation = self._generation
            found = await read_rules_many(self._db, missing)
            if generation == self._generation:
                self._rules.update(found)
            out.update(found)
        return out

    def drop_events(self, event_ids: set[str]) -> None:
        self._generation += 1
        for session_id, rules in list(self._rules.items()):
            if rules.event_id in event_ids:
                del self._rules[session_id]
        self._loading.clear()  # reads under way may predate the change: the next get reads again
        self._rewarm([e for e in event_ids if e in self._warmed])

    def drop(self, session_id: str) -> None:
        self._generation += 1
        self._rules.pop(session_id, None)
        self._loading.clear()

    def clear(self) -> None:
        self._generation += 1
        self._rules.clear()
        self._loading.clear()
        self._rewarm(list(self._warmed))

    def _rewarm(self, event_ids: list[str]) -> None:
        """Events warmed lately have buyers in their waiting rooms: read their new rules now,
        not in front of the next hold (an organizer moving the sale's start just before it
        opens made every first hold wait)."""
        for event_id in event_ids:
            self._warmed.pop(event_id, None)  # or warm_event would skip it as read lately
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next get or warm reads them
        for event_id in event_ids:
            self.warm_event(event_id)
