"""The waitlist (候补): joining a sold-out tier, leaving, where one stands, priorities.

``join_waitlist`` accepts a person only while the tier is sold out to the public (the seat
ledger shows 0 available) and the session is on sale; one live entry per person per tier
(a unique key, ``ALREADY_EXISTS`` for a second). The tenant's organizers may raise an entry's
``priority`` (members, season-ticket holders): entries are served by priority, then by when
they joined. Offers themselves are made by ``waitlist_offers``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.errors import AlreadyExists, BadUserInput, NotFound
from boxoffice.models.events import TicketTier, TierStatus
from boxoffice.models.identity import Role
from boxoffice.models.waitlist import LIVE_WAITLIST_STATUSES, WaitlistEntry, WaitlistStatus
from boxoffice.services import audit, inventory
from boxoffice.services.orders import OrderDeps
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer
from boxoffice.services.waitlist_offers import pass_on_offer, paused_users

MAX_PRIORITY = 1_000_000
MY_WAITLIST_LIMIT = 100

SERVING_ORDER: list[SortKey[WaitlistEntry]] = [
    SortKey(col(WaitlistEntry.priority), lambda e: e.priority, "int", descending=True),
    SortKey(col(WaitlistEntry.joined_at), lambda e: e.joined_at, "datetime"),
    SortKey(col(WaitlistEntry.id), lambda e: e.id),
]


def active_key(tier_id: str, user_id: str) -> str:
    return f"{tier_id}:{user_id}"


async def join_waitlist(
    *, deps: OrderDeps, viewer: Viewer, session_id: str, tier_id: str, quantity: int
) -> WaitlistEntry:
    """Wait for ``quantity`` units of a sold-out tier.

    Raises ``NotFound`` (session), ``BadUserInput`` (``tierId``: unknown, not on sale, or
    reason NOT_SOLD_OUT with ``available``; ``quantity``: above the tier's per-order limit;
    reason WAITLIST_PAUSED with ``until`` for people who let too many offers lapse;
    the session's sale not open), ``AlreadyExists`` (already waiting for this tier)."""
    user_id = viewer.require_user()
    rules = await deps.rules.get(session_id)
    inventory.require_visible(rules, viewer)
    tier = rules.tiers.get(tier_id)
    if tier is None or tier.status is not TierStatus.ACTIVE:
        raise BadUserInput("No such tier on sale in this session.", field="tierId")
    if quantity <= 0 or quantity > tier.limit_per_order:
        raise BadUserInput(f"quantity must be 1 to {tier.limit_per_order}.", field="quantity")
    now = utcnow()
    inventory.check_sale_open(rules, now)
    async with deps.db.read() as session:
        paused = await paused_users(session, [user_id], now)
    if user_id in paused:
        raise BadUserInput(
            "You let too many offers lapse; you may join again later.",
            field="tierId",
            reason="WAITLIST_PAUSED",
            until=paused[user_id].isoformat(),
        )
    snap = await inventory.snapshot(
        db=deps.db, ledger=deps.ledger, rules_cache=deps.rules, session_id=session_id
    )
    available = snap.available.get(tier_id, 0)
    if available > 0:
        raise BadUserInput(
            "This tier is not sold out: hold the tickets instead.",
            field="tierId",
            reason="NOT_SOLD_OUT",
            available=available,
        )
    entry = WaitlistEntry(
        tenant_id=rules.tenant_id,
        event_id=rules.event_id,
        session_id=session_id,
        tier_id=tier_id,
        user_id=user_id,
        quantity=quantity,
        active_key=active_key(tier_id, user_id),
        joined_at=now,
        updated_at=now,
    )
    try:
        async with deps.db.write() as session:
            session.add(entry)
            await session.flush()
    except IntegrityError as exc:
        raise AlreadyExists("You are already on this tier's waitlist.") from exc
    return entry


async def _own_entry(session: AsyncSession, viewer: Viewer, entry_id: str) -> WaitlistEntry:
    user_id = viewer.require_user()
    entry = await session.get(WaitlistEntry, entry_id)
    if entry is None or entry.user_id != user_id:
        raise NotFound("No such waitlist entry.")
    return entry


async def leave_waitlist(*, deps: OrderDeps, viewer: Viewer, entry_id: str) -> bool:
    """Leave the waitlist; a standing offer passes to the next people at once. False when
    the entry had already ended. ``BadUserInput`` (reason OFFER_ORDERED) when an order was
    placed with the offer: cancel the order instead."""
    now = utcnow()
    async with deps.db.write() as session:
        await _own_entry(session, viewer, entry_id)
        left = await session.exec(
            update(WaitlistEntry)
            .where(
                col(WaitlistEntry.id) == entry_id,
                col(WaitlistEntry.status) == WaitlistStatus.WAITING,
            )
            .values(status=WaitlistStatus.LEFT, active_key=None, ended_at=now, updated_at=now)
        )
        if left.rowcount == 1:
            return True
        # an offer may have been made a moment ago: read what the entry is now
        entry = await session.get(WaitlistEntry, entry_id, populate_existing=True)
    assert entry is not None
    if entry.status is not WaitlistStatus.OFFERED:
        return False
    if not await pass_on_offer(deps, entry, outcome=WaitlistStatus.LEFT, now=now):
        raise BadUserInput(
            "An order was placed with this offer: cancel the order instead.",
            field="id",
            reason="OFFER_ORDERED",
        )
    return True


async def positions(session: AsyncSession, entries: Sequence[WaitlistEntry]) -> dict[str, int]:
    """Where each WAITING entry stands in its tier's line (1: served next)."""
    out: dict[str, int] = {}
    for entry in entries:
        if entry.status is not WaitlistStatus.WAITING:
            continue
        ahead = (
            await session.exec(
                select(func.count())
                .select_from(WaitlistEntry)
                .where(
                    WaitlistEntry.tier_id == entry.tier_id,
                    WaitlistEntry.status == WaitlistStatus.WAITING,
                    or_(
                        col(WaitlistEntry.priority) > entry.priority,
                        and_(
                            col(WaitlistEntry.priority) == entry.priority,
                            or_(
                                col(WaitlistEntry.joined_at) < entry.joined_at,
                                and_(
                                    col(WaitlistEntry.joined_at) == entry.joined_at,
                                    col(WaitlistEntry.id) < entry.id,
                                ),
                            ),
                        ),
                    ),
                )
            )
        ).one()
        out[entry.id] = int(ahead) + 1
    return out


async def position_of(deps: OrderDeps, entry: WaitlistEntry) -> int | None:
    async with deps.db.read() as session:
        return (await positions(session, [entry])).get(entry.id)


async def my_waitlist(
    *, deps: OrderDeps, viewer: Viewer
) -> tuple[list[WaitlistEntry], dict[str, int]]:
    """The caller's entries, newest first (not the ones left), and the waiting ones'
    positions."""
    user_id = viewer.require_user()
    async with deps.db.read() as session:
        entries = list(
            (
                await session.exec(
                    select(WaitlistEntry)
                    .where(
                        WaitlistEntry.user_id == user_id,
                        WaitlistEntry.status != WaitlistStatus.LEFT,
                    )
                    .order_by(col(WaitlistEntry.joined_at).desc(), col(WaitlistEntry.id).desc())
                    .limit(MY_WAITLIST_LIMIT)
                )
            ).all()
        )
        return entries, await positions(session, entries)


async def set_priority(
    *, deps: OrderDeps, viewer: Viewer, entry_id: str, priority: int
) -> tuple[WaitlistEntry, dict[str, int]]:
    """An organizer moves an entry up (or down) its tier's line. Audited. Other tenants'
    staff get NOT_FOUND."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    if abs(priority) > MAX_PRIORITY:
        raise BadUserInput(f"priority must be within ±{MAX_PRIORITY}.", field="priority")
    async with deps.db.write() as session:
        entry = await session.get(WaitlistEntry, entry_id, with_for_update=True)
        if entry is None:
            raise NotFound("No such waitlist entry.")
        try:
            viewer.require_staff(entry.tenant_id, Role.ORGANIZER)
        except NotFound as exc:
            raise NotFound("No such waitlist entry.") from exc
        before = entry.priority
        entry.priority, entry.updated_at = priority, utcnow()
        session.add(entry)
        audit.record(
            session,
            viewer=viewer,
            action="waitlist.priority",
            target_type="WaitlistEntry",
            target_id=entry.id,
            tenant_id=entry.tenant_id,
            before={"priority": before},
            after={"priority": priority},
        )
        await session.flush()
        return entry, await positions(session, [entry])


async def tier_waitlist(
    *,
    deps: OrderDeps,
    viewer: Viewer,
    tier_id: str,
    status: WaitlistStatus | None,
    first: int | None,
    after: str | None,
) -> tuple[Page[WaitlistEntry], Callable[[], Awaitable[int]]]:
    """A tier's entries in serving order, for the tenant's staff (live ones by default)."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    size = page_size(first)
    async with deps.db.read() as session:
        tier = await session.get(TicketTier, tier_id)
        if tier is None:
            raise NotFound("No such tier.", field="tierId")
        try:
            viewer.require_staff(tier.tenant_id, Role.ORGANIZER)
        except NotFound as exc:
            raise NotFound("No such tier.", field="tierId") from exc
        conditions: list[Any] = [col(WaitlistEntry.tier_id) == tier_id]
        if status is not None:
            conditions.append(col(WaitlistEntry.status) == status)
        else:
            conditions.append(col(WaitlistEntry.status).in_(sorted(LIVE_WAITLIST_STATUSES)))
        query = apply_keyset(select(WaitlistEntry).where(*conditions), SERVING_ORDER, after=after)
        rows = (await session.exec(query.limit(size + 1))).all()

    async def total() -> int:
        async with deps.db.read() as session:
            counted = await session.exec(
                select(func.count()).select_from(WaitlistEntry).where(*conditions)
            )
            return int(counted.one())

    return Page.from_rows(rows, SERVING_ORDER, size), total
