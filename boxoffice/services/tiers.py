"""Ticket tiers (票档) and the seats each session sells.

A general-admission tier has a ``capacity``. A seated tier names ``sections`` of the
session's seat map: creating it materialises one ``SessionSeat`` row per seat of those
sections in the same transaction, and its capacity is their count, blocked seats excluded.
Two tiers of a session never share a section (and the ``(session_id, seat_id)`` primary key
makes a seat belong to one tier even if two requests race). The inventory builds its ledger
from these rows.

A tier with sales (``reserved > 0``) cannot be deleted, nor shrunk below what it sold.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import func, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, CatalogStateInvalid
from boxoffice.models.events import Event, EventSession, SessionSeat, TicketTier, TierStatus
from boxoffice.models.identity import Tenant
from boxoffice.models.venues import Seat, SeatMap
from boxoffice.money import to_minor
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import get_for_write
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.events import lock_event, refresh_aggregates, require_editable
from boxoffice.services.viewer import Viewer

TIER_FIELDS = (
    "name",
    "price_minor",
    "original_price_minor",
    "capacity",
    "seated",
    "sections",
    "limit_per_order",
    "sort_order",
    "status",
)
MAX_PRICE = Decimal("10000000.00")
MAX_CAPACITY = 1_000_000
MAX_LIMIT_PER_ORDER = 50
DEFAULT_LIMIT_PER_ORDER = 6
MAX_TIERS_PER_SESSION = 50
MAX_BLOCK_BATCH = 10_000


def price_minor(value: Decimal, *, field: str) -> int:
    """An amount ≥ 0 with at most two decimals, in minor units."""
    validation.non_negative_amount(value, field=field)
    if value > MAX_PRICE:
        raise BadUserInput(f"{field} must be at most {MAX_PRICE}", field=field)
    return to_minor(value, field=field)


def _limit_per_order(value: int | None) -> int:
    if value is None:
        return DEFAULT_LIMIT_PER_ORDER
    return validation.positive_int(value, field="limitPerOrder", maximum=MAX_LIMIT_PER_ORDER)


async def _editable_session(
    session: AsyncSession, session_id: str, viewer: Viewer, *, field: str | None, state_field: str
) -> tuple[EventSession, Event]:
    found = await get_for_write(session, EventSession, session_id, viewer=viewer, field=field)
    event = await lock_event(session, found.event_id)
    await session.refresh(found)
    require_editable(event, field=state_field)
    return found, event


async def _materialise_seats(
    session: AsyncSession, event_session: EventSession, tier: TicketTier, sections: list[str]
) -> int:
    """Give the tier every seat of ``sections`` (seats blocked before keep their block);
    returns the tier's capacity (its unblocked seats)."""
    if event_session.seat_map_id is None:
        raise BadUserInput(
            "The session has no seat map; give a capacity instead.", field="sections"
        )
    seat_map = await session.get(SeatMap, event_session.seat_map_id)
    assert seat_map is not None
    known = {s["name"] for s in seat_map.layout.get("sections", [])}
    unknown = [name for name in sections if name not in known]
    if unknown:
        raise BadUserInput(f"The seat map has no section {unknown[0]!r}.", field="sections")
    others = await session.exec(
        select(TicketTier).where(
            TicketTier.session_id == event_session.id,
            col(TicketTier.seated),
            TicketTier.id != tier.id,
        )
    )
    for other in others.all():
        shared = sorted(set(other.sections) & set(sections))
        if shared:
            raise BadUserInput(
                f"Section {shared[0]!r} is already in tier {other.name!r}.", field="sections"
            )
    seat_ids = list(
        (
            await session.exec(
                select(Seat.id).where(
                    Seat.seat_map_id == seat_map.id, col(Seat.section).in_(sections)
                )
            )
        ).all()
    )
    existing = {
        row.seat_id: row
        for row in (
            await session.exec(
                select(SessionSeat).where(
                    SessionSeat.session_id == event_session.id,
                    col(SessionSeat.seat_id).in_(seat_ids),
                )
            )
        ).all()
    }
    if any(row.tier_id is not None for row in existing.values()):
        raise BadUserInput("Some of these seats are already in another tier.", field="sections")
    if existing:
        await session.exec(
            update(SessionSeat)
            .where(
                col(SessionSeat.session_id) == event_session.id,
                col(SessionSeat.seat_id).in_(list(existing)),
            )
            .values(tier_id=tier.id)
        )
    fresh = [
        {"session_id": event_session.id, "seat_id": seat_id, "tier_id": tier.id, "blocked": False}
        for seat_id in seat_ids
        if seat_id not in existing
    ]
    if fresh:
        await session.exec(insert(SessionSeat), params=fresh)
    capacity = len(seat_ids) - sum(1 for row in existing.values() if row.blocked)
    if capacity <= 0:
        raise BadUserInput("Every seat of these sections is blocked.", field="sections")
    return capacity


async def create_tier(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    session_id: str,
    name: str,
    price: Decimal,
    capacity: int | None = None,
    sections: Sequence[str] | None = None,
    original_price: Decimal | None = None,
    description: str | None = None,
    limit_per_order: int | None = None,
    sort_order: int | None = None,
    status: TierStatus = TierStatus.ACTIVE,
) -> TicketTier:
    """General admission with ``capacity`` > 0, or seated with ``sections`` of the session's
    seat map (``capacity``, if given, must equal their unblocked seats)."""
    name = validation.text(name, field="name", max_length=64)
    minor = price_minor(price, field="price")
    original = (
        None if original_price is None else price_minor(original_price, field="originalPrice")
    )
    if original is not None and original < minor:
        raise BadUserInput("originalPrice must be at least price.", field="originalPrice")
    description = validation.optional_text(description, field="description", max_length=500)
    per_order = _limit_per_order(limit_per_order)
    seated_sections = list(dict.fromkeys(s.strip() for s in sections or ()))
    if sections and len(seated_sections) != len(sections):
        raise BadUserInput("A section is named twice.", field="sections")
    if not seated_sections:
        if capacity is None:
            raise BadUserInput("Give a capacity, or sections of the seat map.", field="capacity")
        validation.positive_int(capacity, field="capacity", maximum=MAX_CAPACITY)
    try:
        async with db.write() as session:
            event_session, event = await _editable_session(
                session, session_id, viewer, field="sessionId", state_field="sessionId"
            )
            tenant = await session.get(Tenant, event_session.tenant_id)
            count = (
                await session.exec(
                    select(func.count())
                    .select_from(TicketTier)
                    .where(TicketTier.session_id == event_session.id)
                )
            ).one()
            if count >= MAX_TIERS_PER_SESSION:
                raise BadUserInput(
                    f"A session has at most {MAX_TIERS_PER_SESSION} tiers.", field="sessionId"
                )
            tier = TicketTier(
                tenant_id=event_session.tenant_id,
                session_id=event_session.id,
                name=name,
                description=description,
                price_minor=minor,
                original_price_minor=original,
                currency=tenant.currency if tenant else "CNY",
                capacity=capacity or 0,
                seated=bool(seated_sections),
                sections=seated_sections,
                limit_per_order=per_order,
                sort_order=count if sort_order is None else sort_order,
                status=status,
            )
            session.add(tier)
            await session.flush()
            if seated_sections:
                seats = await _materialise_seats(session, event_session, tier, seated_sections)
                if capacity is not None and capacity != seats:
                    raise BadUserInput(
                        f"A seated tier's capacity is its {seats} seats.", field="capacity"
                    )
                tier.capacity = seats
                session.add(tier)
            await refresh_aggregates(session, event)
            audit.record(
                session,
                viewer=viewer,
                action="tier.create",
                target_type="TicketTier",
                target_id=tier.id,
                tenant_id=tier.tenant_id,
                after=audit.snapshot(tier, TIER_FIELDS),
            )
    except IntegrityError as exc:
        # Only a concurrent tier taking the same seats gets here (the event row is locked
        # on PostgreSQL and writers are serialised on SQLite, so this is a last line).
        raise BadUserInput(
            "These seats were just given to another tier.", field="sections"
        ) from exc
    await cache.invalidate(event_ids=[event.id], sessions=[session_id])
    return tier


async def update_tier(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    tier_id: str,
    name: str | None = None,
    price: Decimal | None = None,
    original_price: Decimal | None = None,
    capacity: int | None = None,
    description: str | None = None,
    limit_per_order: int | None = None,
    sort_order: int | None = None,
    status: TierStatus | None = None,
) -> TicketTier:
    """Change a tier (None leaves a field as it is). A general-admission capacity never goes
    below what was sold; a seated tier's capacity follows its seats."""
    async with db.write() as session:
        tier = await get_for_write(session, TicketTier, tier_id, viewer=viewer)
        _, event = await _editable_session(
            session, tier.session_id, viewer, field=None, state_field="id"
        )
        await session.refresh(tier)
        before = audit.snapshot(tier, TIER_FIELDS)
        if name is not None:
            tier.name = validation.text(name, field="name", max_length=64)
        if price is not None:
            tier.price_minor = price_minor(price, field="price")
        if original_price is not None:
            tier.original_price_minor = price_minor(original_price, field="originalPrice")
        if tier.original_price_minor is not None and tier.original_price_minor < tier.price_minor:
            raise BadUserInput("originalPrice must be at least price.", field="originalPrice")
        if capacity is not None:
            if tier.seated:
                raise BadUserInput("A seated tier's capacity is its seats.", field="capacity")
            validation.positive_int(capacity, field="capacity", maximum=MAX_CAPACITY)
            if capacity < tier.reserved:
                raise BadUserInput(
                    f"{tier.reserved} tickets are already sold or reserved.", field="capacity"
                )
            tier.capacity = capacity
        if description is not None:
            tier.description = validation.optional_text(
                description, field="description", max_length=500
            )
        if limit_per_order is not None:
            tier.limit_per_order = _limit_per_order(limit_per_order)
        if sort_order is not None:
            tier.sort_order = sort_order
        if status is not None:
            tier.status = status
        tier.updated_at = utcnow()
        session.add(tier)
        await session.flush()
        await refresh_aggregates(session, event)
        audit.record(
            session,
            viewer=viewer,
            action="tier.update",
            target_type="TicketTier",
            target_id=tier.id,
            tenant_id=tier.tenant_id,
            before=before,
            after=audit.snapshot(tier, TIER_FIELDS),
        )
    await cache.invalidate(event_ids=[event.id], sessions=[tier.session_id])
    return tier


async def delete_tier(*, db: Database, cache: CatalogCache, viewer: Viewer, tier_id: str) -> None:
    """Delete a tier without sales; its seats leave the session (blocked ones stay blocked)."""
    async with db.write() as session:
        tier = await get_for_write(session, TicketTier, tier_id, viewer=viewer)
        _, event = await _editable_session(
            session, tier.session_id, viewer, field=None, state_field="id"
        )
        await session.refresh(tier)
        if tier.reserved > 0:
            raise CatalogStateInvalid(
                "This tier has sales; disable it instead of deleting it.", field="id"
            )
        before = audit.snapshot(tier, TIER_FIELDS)
        await session.exec(
            delete(SessionSeat).where(
                col(SessionSeat.tier_id) == tier.id, col(SessionSeat.blocked).is_(False)
            )
        )
        await session.exec(
            update(SessionSeat).where(col(SessionSeat.tier_id) == tier.id).values(tier_id=None)
        )
        await session.delete(tier)
        await session.flush()
        await refresh_aggregates(session, event)
        audit.record(
            session,
            viewer=viewer,
            action="tier.delete",
            target_type="TicketTier",
            target_id=tier.id,
            tenant_id=tier.tenant_id,
            before=before,
        )
    await cache.invalidate(event_ids=[event.id], sessions=[tier.session_id])


async def set_seats_blocked(
    *,
    db: Database,
    cache: CatalogCache,
    viewer: Viewer,
    session_id: str,
    seat_ids: Sequence[str],
    blocked: bool,
) -> EventSession:
    """Block seats of a session's map (kept off sale: camera positions, house seats) or
    unblock them. Blocked seats outside every tier still count as assigned for publishing.
    The tiers' capacities follow; a tier cannot drop below what it sold."""
    wanted = list(dict.fromkeys(seat_ids))
    if not wanted:
        raise BadUserInput("Name at least one seat.", field="seatIds")
    if len(wanted) > MAX_BLOCK_BATCH:
        raise BadUserInput(f"At most {MAX_BLOCK_BATCH} seats at a time.", field="seatIds")
    async with db.write() as session:
        event_session, event = await _editable_session(
            session, session_id, viewer, field=None, state_field="sessionId"
        )
        if event_session.seat_map_id is None:
            raise BadUserInput("The session has no seat map.", field="sessionId")
        found = set(
            (
                await session.exec(
                    select(Seat.id).where(
                        Seat.seat_map_id == event_session.seat_map_id, col(Seat.id).in_(wanted)
                    )
                )
            ).all()
        )
        if len(found) != len(wanted):
            raise BadUserInput("A seat is not on this session's seat map.", field="seatIds")
        rows = {
            row.seat_id: row
            for row in (
                await session.exec(
                    select(SessionSeat).where(
                        SessionSeat.session_id == event_session.id,
                        col(SessionSeat.seat_id).in_(wanted),
                    )
                )
            ).all()
        }
        touched_tiers = {row.tier_id for row in rows.values() if row.tier_id is not None}
        if rows:
            await session.exec(
                update(SessionSeat)
                .where(
                    col(SessionSeat.session_id) == event_session.id,
                    col(SessionSeat.seat_id).in_(list(rows)),
                )
                .values(blocked=blocked)
            )
        if blocked:
            fresh = [
                {"session_id": event_session.id, "seat_id": s, "tier_id": None, "blocked": True}
                for s in wanted
                if s not in rows
            ]
            if fresh:
                await session.exec(insert(SessionSeat), params=fresh)
        else:
            await session.exec(
                delete(SessionSeat).where(
                    col(SessionSeat.session_id) == event_session.id,
                    col(SessionSeat.tier_id).is_(None),
                    col(SessionSeat.blocked).is_(False),
                )
            )
        for tier_id in sorted(touched_tiers):
            tier = await session.get(TicketTier, tier_id, populate_existing=True)
            assert tier is not None
            open_seats = (
                await session.exec(
                    select(func.count())
                    .select_from(SessionSeat)
                    .where(SessionSeat.tier_id == tier_id, col(SessionSeat.blocked).is_(False))
                )
            ).one()
            if open_seats < tier.reserved:
                raise CatalogStateInvalid(
                    f"Tier {tier.name!r} has sold {tier.reserved} of its seats.", field="seatIds"
                )
            tier.capacity = open_seats
            tier.updated_at = utcnow()
            session.add(tier)
        audit.record(
            session,
            viewer=viewer,
            action="session.block_seats" if blocked else "session.unblock_seats",
            target_type="Session",
            target_id=event_session.id,
            tenant_id=event_session.tenant_id,
            after={"seatIds": wanted[:100], "count": len(wanted)},
        )
    await cache.invalidate(event_ids=[event.id], sessions=[session_id])
    return event_session
