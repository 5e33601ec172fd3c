"""What the hold path needs to know about a session, read once and cached per process.

Holds are the hottest write path: they must not read the catalog from the database each time.
A ``SessionRules`` snapshot (sale window, queue flag, limits, tier prices, which seat is in
which tier) is cached for a few seconds and dropped at once when the catalog changes the
session's event (the catalog's invalidation messages).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

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

TTL_SECONDS = 5.0
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
    def __init__(self, db: Database, *, ttl_seconds: float = TTL_SECONDS) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._rules: dict[str, SessionRules] = {}
        self._loading: dict[str, asyncio.Future[SessionRules]] = {}
        # sessions whose seat ledger this process is loading right now (single flight)
        self.ledger_loads: dict[str, asyncio.Future[None]] = {}

    async def get(self, session_id: str) -> SessionRules:
        cached = self._rules.get(session_id)
        if cached is not None and time.monotonic() - cached.loaded_at < self._ttl:
            return cached
        pending = self._loading.get(session_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[SessionRules] = asyncio.get_running_loop().create_future()
        self._loading[session_id] = future
        try:
            rules = await read_rules(self._db, session_id)
            self._rules[session_id] = rules
            future.set_result(rules)
            return rules
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        finally:
            self._loading.pop(session_id, None)

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
            found = await read_rules_many(self._db, missing)
            self._rules.update(found)
            out.update(found)
        return out

    def drop_events(self, event_ids: set[str]) -> None:
        for session_id, rules in list(self._rules.items()):
            if rules.event_id in event_ids:
                del self._rules[session_id]

    def drop(self, session_id: str) -> None:
        self._rules.pop(session_id, None)

    def clear(self) -> None:
        self._rules.clear()
