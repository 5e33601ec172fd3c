"""Seat maps: the layout drawn from a configuration, large maps through the compact form,
and seats read through a session with their tier and status."""

from __future__ import annotations

import math

import httpx
import pytest

from boxoffice.errors import BadUserInput
from boxoffice.models.identity import Role
from boxoffice.models.venues import SeatMap
from boxoffice.runtime import Runtime
from boxoffice.services.seat_maps import (
    MAX_SEATS,
    RowRangeSpec,
    RowSpec,
    SeatSpec,
    SectionSpec,
    draw,
    expand_row_range,
)
from tests.catalog_factories import make_event, make_session, make_tier, make_venue
from tests.helpers import gql, make_tenant, make_user, token_for


def test_rows_are_centred_and_sections_placed_side_by_side():
    drawing = draw(
        [
            SectionSpec("A", rows=[RowSpec("1", 2), RowSpec("2", 4)]),
            SectionSpec("B", row_ranges=[RowRangeSpec("A", "B", 1)]),
        ]
    )
    where = {(s["section"], s["row_label"], s["number"]): (s["x"], s["y"]) for s in drawing.seats}
    assert where[("A", "1", 1)] == (1.0, 0.0) and where[("A", "1", 2)] == (2.0, 0.0)
    assert [where[("A", "2", n)] for n in range(1, 5)] == [(0, 1), (1, 1), (2, 1), (3, 1)]
    # B starts to the right of A's widest row plus the gap
    assert where[("B", "A", 1)] == (6.0, 0.0) and where[("B", "B", 1)] == (6.0, 1.0)
    assert [s["ordinal"] for s in drawing.seats] == list(range(8))
    assert drawing.layout["sections"][0] == {
        "name": "A",
        "rows": ["1", "2"],
        "seatCount": 6,
        "bounds": {"x": 0.0, "y": 0.0, "width": 4.0, "height": 2.0},
    }
    assert drawing.layout["seatCount"] == 8
    assert len({s["id"] for s in drawing.seats}) == 8


def test_explicit_seats_keep_their_coordinates_flags_and_labels():
    drawing = draw(
        [
            SectionSpec(
                "Box",
                seats=[
                    SeatSpec("1", 1, x=-10.5, y=3.0, label="Royal box", wheelchair=True),
                    SeatSpec("1", 2, companion=True),
                ],
            )
        ]
    )
    first, second = drawing.seats
    assert (first["x"], first["y"], first["label"], first["wheelchair"]) == (
        -10.5,
        3.0,
        "Royal box",
        True,
    )
    assert second["companion"] and second["label"] == "Box-1-2"
    assert second["x"] > first["x"]


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 2e6])
def test_coordinates_must_be_finite(bad: float):
    with pytest.raises(BadUserInput) as refused:
        draw([SectionSpec("A", seats=[SeatSpec("1", 1, x=bad, y=0.0)])])
    assert refused.value.field == "sections[0].seats[0].x"


def test_a_map_has_at_most_a_hundred_thousand_seats():
    rows = [RowRangeSpec("1", "100", 1000)]
    with pytest.raises(BadUserInput) as refused:
        draw([SectionSpec("A", row_ranges=rows), SectionSpec("B", rows=[RowSpec("1", 1)])])
    assert str(MAX_SEATS) in refused.value.message
    assert refused.value.field == "sections[1].rows[0]"


def test_row_ranges():
    assert expand_row_range("A", "E", field="f") == ["A", "B", "C", "D", "E"]
    assert expand_row_range("8", "11", field="f") == ["8", "9", "10", "11"]
    with pytest.raises(BadUserInput):
        expand_row_range("AA", "AC", field="f")


async def test_a_large_map_through_graphql(client: httpx.AsyncClient, rt: Runtime):
    # given an organizer drawing a 2,400-seat arena with row ranges
    tenant = await make_tenant(rt, "A")
    token = await token_for(rt, await make_user(rt, "o@a.example", Role.ORGANIZER, tenant))
    venue = await make_venue(rt, tenant, "Arena")
    sections = [
        {"name": name, "rowRanges": [{"from": "A", "to": "T", "seats": 30}]}
        for name in ("A区", "B区", "C区", "D区")
    ]
    made = await gql(
        client,
        "mutation($i: CreateSeatMapInput!) { createSeatMap(input: $i) { id seatCount bounds "
        "{ width height } } }",
        {"i": {"venueId": venue.id, "name": "Arena", "sections": sections}},
        token=token,
    )
    seat_map = made.data["createSeatMap"]
    assert seat_map["seatCount"] == 2400
    assert seat_map["bounds"] == {"width": 4 * 30 + 3 * 2.0, "height": 20.0}
    # when it is sold in a session with a tier per pair of sections
    event = await make_event(rt, tenant, venue)
    async with rt.db.read() as s:
        stored = await s.get(SeatMap, seat_map["id"])
    assert stored is not None
    session = await make_session(rt, event, seat_map=stored)
    front = await make_tier(rt, session, "Front", sections=["A区", "B区"])
    await make_tier(rt, session, "Back", sections=["C区", "D区"])
    # then the compact form carries every seat, with its tier
    compact = (
        await gql(
            client,
            "query($id: ID!) { session(id: $id) { seatMap { compact } availability { compact } } }",
            {"id": session.id},
            token=token,
        )
    ).data["session"]
    packed = compact["seatMap"]["compact"]
    assert len(packed["ids"]) == len(set(packed["ids"])) == 2400
    assert packed["sections"] == ["A区", "B区", "C区", "D区"]
    assert packed["rows"][0] == [chr(65 + i) for i in range(20)]
    assert {packed["tierIds"][i] for i in packed["tier"][:1200]} == {front.id}
    statuses = compact["availability"]["compact"]
    assert len(statuses["ids"]) == 2400 and set(statuses["status"]) == {0}
    assert statuses["legend"] == ["AVAILABLE", "HELD", "SOLD", "BLOCKED"]
    # and typed seats come in capped pages, one section at a time if asked
    typed = await gql(
        client,
        """query($id: ID!) { session(id: $id) { seatMap {
          seats(section: "B区", first: 40, offset: 30) { section row number tierId status label }
        } } }""",
        {"id": session.id},
        token=token,
    )
    seats = typed.data["session"]["seatMap"]["seats"]
    assert len(seats) == 40
    assert seats[0] == {
        "section": "B区",
        "row": "B",
        "number": 1,
        "tierId": front.id,
        "status": "AVAILABLE",
        "label": "B区-B-1",
    }
    too_many = await gql(
        client,
        "query($id: ID!) { session(id: $id) { seatMap { seats(first: 5001) { id } } } }",
        {"id": session.id},
        token=token,
    )
    assert too_many.code == "BAD_USER_INPUT" and too_many.error["extensions"]["field"] == "first"
