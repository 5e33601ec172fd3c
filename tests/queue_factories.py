"""Factories for the waiting room: events selling through it, crowds of customers, GraphQL
operations and a ticker over the real catalog with a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from boxoffice.clock import utcnow
from boxoffice.models.events import Event, EventSession, TicketTier
from boxoffice.models.identity import Role, Tenant, User
from boxoffice.runtime import Runtime
from boxoffice.services import event_sessions
from boxoffice.services.queue_admission import AdmissionTicker
from boxoffice.services.queue_events import QueueCatalog
from tests.catalog_factories import (
    OPERATOR,
    make_event,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import make_tenant

JOIN = """mutation($e: ID!, $d: String) { joinQueue(eventId: $e, deviceId: $d) {
  eventId status position ahead estimatedWaitSeconds queueToken expiresAt } }"""
STATUS = """query($e: ID!) { queueStatus(eventId: $e) {
  eventId status position ahead estimatedWaitSeconds queueToken expiresAt } }"""
POSITION = """subscription($e: ID!) { queuePosition(eventId: $e) {
  eventId status position ahead estimatedWaitSeconds queueToken expiresAt } }"""
HOLD = """mutation($i: CreateHoldInput!) { createHold(input: $i) { token sessionId } }"""


@dataclass
class QueueSale:
    tenant: Tenant
    event: Event
    session: EventSession
    tier: TicketTier


async def queue_sale(
    rt: Runtime,
    *,
    tenant: Tenant | None = None,
    title: str = "Hot Show",
    sale_starts_at: datetime | None = None,
    capacity: int = 100,
    admit_per_second: int | None = None,
    published: bool = True,
) -> QueueSale:
    """A published event with one queue-enabled general-admission session (its sale opened
    an hour ago unless ``sale_starts_at`` says otherwise)."""
    tenant = tenant or await make_tenant(rt, f"{title} Club")
    venue = await make_venue(rt, tenant, f"{title} Hall")
    event = await make_event(rt, tenant, venue, title)
    session = await make_session(
        rt, event, sale_starts_at=sale_starts_at or utcnow() - timedelta(hours=1)
    )
    session = await event_sessions.update_session(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=session.id,
        queue_enabled=True,
        queue_admit_per_second=admit_per_second,
    )
    tier = await make_tier(rt, session, "GA", capacity=capacity)
    if published:
        event = await publish(rt, event)
    return QueueSale(tenant, event, session, tier)


async def customers(rt: Runtime, count: int, prefix: str = "fan") -> list[tuple[User, str]]:
    """``count`` customers (inserted in one transaction, no password) with access tokens."""
    users = [
        User(email=f"{prefix}{i:05d}@example.com", nickname=f"{prefix}{i}", roles=[Role.CUSTOMER])
        for i in range(count)
    ]
    async with rt.db.write() as session:
        session.add_all(users)
    return [
        (
            user,
            rt.auth.tokens.issue(
                user_id=user.id,
                session_id=f"queue-test-{user.id}",
                version=user.token_version,
                roles=[Role.CUSTOMER.value],
                tenant_roles={},
            ),
        )
        for user in users
    ]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


def catalog_ticker(
    rt: Runtime, clock: Clock, *, tick_seconds: float = 1.0
) -> tuple[AdmissionTicker, QueueCatalog]:
    """The ticker the worker runs, over the real catalog and ledger, on ``clock``."""
    catalog = QueueCatalog(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        default_rate=rt.settings.queue_admit_per_second,
        clock=clock.moment,
    )
    ticker = AdmissionTicker(
        room=rt.backends.waiting_room,
        broker=rt.backends.broker,
        leases=rt.backends.leases,
        schedules=catalog,
        owner="test",
        tick_seconds=tick_seconds,
        admission_window_seconds=rt.settings.queue_admission_window_seconds,
        clock=clock,
    )
    return ticker, catalog
