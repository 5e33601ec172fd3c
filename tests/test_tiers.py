"""Tiers and the seats each session sells: complete, one tier per seat even under racing
requests, and capacities that follow blocked seats."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

import pytest
from sqlmodel import col, select, update

from boxoffice.errors import BadUserInput, CatalogStateInvalid
from boxoffice.models.events import SeatStatus, SessionSeat, TicketTier
from boxoffice.models.venues import Seat
from boxoffice.runtime import Runtime
from boxoffice.services import availability, tiers
from tests.catalog_factories import (
    OPERATOR,
    make_event,
    make_seat_map,
    make_session,
    make_tier,
    make_venue,
)
from tests.helpers import make_tenant


async def _seated_session(rt: Runtime):  # type: ignore[no-untyped-def]
    tenant = await make_tenant(rt, "A")
    venue = await make_venue(rt, tenant)
    seat_map = await make_seat_map(rt, venue, {"A": 5, "B": 5, "C": 5})
    event = await make_event(rt, tenant, venue)
    return seat_map, await make_session(rt, event, seat_map=seat_map)


async def _rows(rt: Runtime, session_id: str) -> list[SessionSeat]:
    async with rt.db.read() as s:
        return list(
            (await s.exec(select(SessionSeat).where(SessionSeat.session_id == session_id))).all()
        )


async def _seat_ids(rt: Runtime, seat_map_id: str, section: str) -> list[str]:
    async with rt.db.read() as s:
        return list(
            (
                await s.exec(
                    select(Seat.id)
                    .where(Seat.seat_map_id == seat_map_id, Seat.section == section)
                    .order_by(col(Seat.ordinal))
                )
            ).all()
        )


async def test_seated_tiers_materialise_every_seat_of_their_sections(rt: Runtime):
    seat_map, session = await _seated_session(rt)
    front = await make_tier(rt, session, "Front", sections=["A"])
    rest = await make_tier(rt, session, "Rest", sections=["B", "C"])
    rows = await _rows(rt, session.id)
    assert len(rows) == 30 and len({r.seat_id for r in rows}) == 30
    by_tier = Counter(r.tier_id for r in rows)
    assert by_tier == {front.id: 10, rest.id: 20}
    assert (front.capacity, rest.capacity) == (10, 20)
    assert {r.seat_id for r in rows if r.tier_id == front.id} == set(
        await _seat_ids(rt, seat_map.id, "A")
    )
    current = await availability.session_availability(
        db=rt.db, ledger=rt.backends.ledger, rules_cache=rt.session_rules, session_id=session.id
    )
    assert dict(current.tiers) == {front.id: 10, rest.id: 20}
    assert len(current.seats) == 30
    assert {status for _, status in current.seats} == {SeatStatus.AVAILABLE}


async def test_racing_tiers_never_share_a_seat(rt: Runtime):
    # given a seated session
    _seat_map, session = await _seated_session(rt)

    # when eight organizers create overlapping seated tiers at once
    async def create(i: int) -> TicketTier | Exception:
        try:
            return await tiers.create_tier(
                db=rt.db,
                cache=rt.catalog_cache,
                viewer=OPERATOR,
                session_id=session.id,
                name=f"T{i}",
                price=Decimal("10"),
                sections=["A", "B"] if i % 2 else ["B", "C"],
            )
        except BadUserInput as exc:
            return exc

    results = await asyncio.gather(*(create(i) for i in range(8)))
    # then exactly one wins, the others answer BAD_USER_INPUT on sections
    won = [r for r in results if isinstance(r, TicketTier)]
    lost = [r for r in results if isinstance(r, BadUserInput)]
    assert len(won) == 1 and len(lost) == 7
    assert {e.field for e in lost} == {"sections"}
    # and the session's seats are exactly the winner's, once each
    rows = await _rows(rt, session.id)
    assert len(rows) == 20 and {r.tier_id for r in rows} == {won[0].id}
    async with rt.db.read() as s:
        assert [t.id for t in (await s.exec(select(TicketTier))).all()] == [won[0].id]


async def test_blocked_seats_leave_the_tiers_capacity(rt: Runtime):
    seat_map, session = await _seated_session(rt)
    front = await make_tier(rt, session, "Front", sections=["A"])
    a_seats = await _seat_ids(rt, seat_map.id, "A")
    c_seats = await _seat_ids(rt, seat_map.id, "C")

    async def block(ids: list[str], blocked: bool) -> None:
        await tiers.set_seats_blocked(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=OPERATOR,
            session_id=session.id,
            seat_ids=ids,
            blocked=blocked,
        )

    # blocking two priced seats and a seat outside every tier
    await block([*a_seats[:2], c_seats[0]], True)
    async with rt.db.read() as s:
        tier = await s.get(TicketTier, front.id)
    assert tier is not None and tier.capacity == 8
    current = await availability.session_availability(
        db=rt.db, ledger=rt.backends.ledger, rules_cache=rt.session_rules, session_id=session.id
    )
    statuses = dict(current.seats)
    assert [statuses[i] for i in a_seats[:3]] == [
        SeatStatus.BLOCKED,
        SeatStatus.BLOCKED,
        SeatStatus.AVAILABLE,
    ]
    assert statuses[c_seats[0]] == SeatStatus.BLOCKED
    # a later tier over C keeps the block and counts only the open seats
    back = await make_tier(rt, session, "Back", sections=["C"])
    assert back.capacity == 9
    # unblocking gives the seats back
    await block([*a_seats[:2], c_seats[0]], False)
    async with rt.db.read() as s:
        capacities = {t.name: t.capacity for t in (await s.exec(select(TicketTier))).all()}
    assert capacities == {"Front": 10, "Back": 10}
    # a seat that is not on the map is refused
    with pytest.raises(BadUserInput) as refused:
        await block(["not-a-seat"], True)
    assert refused.value.field == "seatIds"


async def test_blocking_cannot_take_sold_seats(rt: Runtime):
    seat_map, session = await _seated_session(rt)
    front = await make_tier(rt, session, "Front", sections=["A"])
    async with rt.db.write() as s:
        await s.exec(update(TicketTier).where(col(TicketTier.id) == front.id).values(reserved=9))
    a_seats = await _seat_ids(rt, seat_map.id, "A")
    with pytest.raises(CatalogStateInvalid) as refused:
        await tiers.set_seats_blocked(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=OPERATOR,
            session_id=session.id,
            seat_ids=a_seats[:2],
            blocked=True,
        )
    assert refused.value.details["field"] == "seatIds"
    rows = await _rows(rt, session.id)
    assert not any(r.blocked for r in rows)


async def test_deleting_a_tier_frees_its_seats_but_keeps_blocks(rt: Runtime):
    seat_map, session = await _seated_session(rt)
    front = await make_tier(rt, session, "Front", sections=["A"])
    a_seats = await _seat_ids(rt, seat_map.id, "A")
    await tiers.set_seats_blocked(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=session.id,
        seat_ids=a_seats[:1],
        blocked=True,
    )
    await tiers.delete_tier(db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, tier_id=front.id)
    rows = await _rows(rt, session.id)
    assert [(r.seat_id, r.tier_id, r.blocked) for r in rows] == [(a_seats[0], None, True)]
    again = await make_tier(rt, session, "Front again", sections=["A"])
    assert again.capacity == 9


async def test_general_admission_tiers_have_no_seats(rt: Runtime):
    tenant = await make_tenant(rt, "A")
    event = await make_event(rt, tenant, await make_venue(rt, tenant))
    session = await make_session(rt, event)
    tier = await make_tier(rt, session, capacity=500)
    assert (tier.capacity, tier.seated, tier.reserved) == (500, False, 0)
    assert await _rows(rt, session.id) == []
    current = await availability.session_availability(
        db=rt.db, ledger=rt.backends.ledger, rules_cache=rt.session_rules, session_id=session.id
    )
    assert current.tiers == [(tier.id, 500)] and current.seats == []
