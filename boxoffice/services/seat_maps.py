"""Seat maps (座位图): a venue's seats as rows, drawn from a structured configuration.

A configuration lists sections in display order. Each section gives its seats as any mix of
``rows`` (a label and a seat count: seats 1..n), ``row_ranges`` (rows "A".."T" or "1".."30"
with n seats each) and an explicit ``seats`` list (row, number, optional x/y, label and
accessibility flags). Seats without coordinates are laid out on a grid: one unit per seat,
one per row, rows centred on the widest, each section's grid placed to the right of
everything drawn before it. Explicit coordinates are absolute.

Seat maps are immutable once created (sessions price their seats); draw a new one to change
a layout.
"""

from __future__ import annotations

import math
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlmodel import col, select

from boxoffice.db import Database
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.ids import new_id
from boxoffice.models.identity import Role
from boxoffice.models.venues import Seat, SeatMap, Venue
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import is_agent, require_seat_map_writer
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.viewer import Viewer

MAX_SEATS = 100_000
MAX_SECTIONS = 500
MAX_ROWS_PER_SECTION = 500
MAX_SEATS_PER_ROW = 1_000
MAX_SEAT_NUMBER = 9_999
MAX_COORDINATE = 1_000_000.0
SECTION_NAME_LENGTH = 32
ROW_LABEL_LENGTH = 8
SEAT_LABEL_LENGTH = 64
SEAT_PITCH = 1.0
ROW_PITCH = 1.0
SECTION_GAP = 2.0


@dataclass(frozen=True)
class RowSpec:
    label: str
    seats: int


@dataclass(frozen=True)
class RowRangeSpec:
    first: str
    last: str
    seats: int


@dataclass(frozen=True)
class SeatSpec:
    row: str
    number: int
    x: float | None = None
    y: float | None = None
    label: str | None = None
    wheelchair: bool = False
    companion: bool = False
    restricted_view: bool = False


@dataclass(frozen=True)
class SectionSpec:
    name: str
    rows: Sequence[RowSpec] = ()
    row_ranges: Sequence[RowRangeSpec] = ()
    seats: Sequence[SeatSpec] = ()


@dataclass
class _Placed:
    section: str
    row: str
    number: int
    spec: SeatSpec | None
    x: float = 0.0
    y: float = 0.0
    row_index: int = 0


@dataclass
class _Bounds:
    min_x: float = math.inf
    min_y: float = math.inf
    max_x: float = -math.inf
    max_y: float = -math.inf

    def add(self, x: float, y: float) -> None:
        self.min_x, self.max_x = min(self.min_x, x), max(self.max_x, x)
        self.min_y, self.max_y = min(self.min_y, y), max(self.max_y, y)

    @property
    def empty(self) -> bool:
        return self.min_x == math.inf

    def as_dict(self) -> dict[str, float]:
        if self.empty:
            return {"x": 0.0, "y": 0.0, "width": 0.0, "height": 0.0}
        return {
            "x": self.min_x,
            "y": self.min_y,
            "width": self.max_x - self.min_x + SEAT_PITCH,
            "height": self.max_y - self.min_y + ROW_PITCH,
        }


@dataclass
class Drawing:
    """A validated seat map: the layout metadata and its seats in drawing order."""

    layout: dict[str, Any]
    seats: list[dict[str, Any]] = field(default_factory=list)


def expand_row_range(first: str, last: str, *, field: str) -> list[str]:
    """Row labels from ``first`` to ``last`` inclusive: single letters ("A".."T") or numbers
    ("1".."30")."""
    first, last = first.strip(), last.strip()
    letters = string.ascii_uppercase
    if first.isdigit() and last.isdigit():
        low, high = int(first), int(last)
        labels = [str(n) for n in range(low, high + 1)]
    elif len(first) == 1 and len(last) == 1 and first in letters and last in letters:
        labels = list(letters[letters.index(first) : letters.index(last) + 1])
    else:
        raise BadUserInput(
            "A row range runs from one letter to another (A..T) or one number to another (1..30)",
            field=field,
        )
    if not labels:
        raise BadUserInput("The row range is empty: first comes after last", field=field)
    return labels


def _row_label(value: str, *, field: str) -> str:
    return validation.text(value, field=field, max_length=ROW_LABEL_LENGTH)


def _seat_count(value: int, *, field: str) -> int:
    return validation.positive_int(value, field=field, maximum=MAX_SEATS_PER_ROW)


def _coordinate(value: float, *, field: str) -> float:
    if not math.isfinite(value) or abs(value) > MAX_COORDINATE:
        raise BadUserInput(
            f"{field} must be a finite number within ±{MAX_COORDINATE:g}", field=field
        )
    return float(value)


def draw(sections: Sequence[SectionSpec]) -> Drawing:
    """Validate a configuration and lay its seats out. Raises BAD_USER_INPUT naming the first
    offending field (``sections[i].rows[j].seats`` and so on)."""
    if not sections:
        raise BadUserInput("A seat map needs at least one section", field="sections")
    if len(sections) > MAX_SECTIONS:
        raise BadUserInput(f"A seat map has at most {MAX_SECTIONS} sections", field="sections")
    names: set[str] = set()
    placed_sections: list[tuple[str, list[_Placed]]] = []
    total = 0
    for i, section in enumerate(sections):
        where = f"sections[{i}]"
        name = validation.text(section.name, field=f"{where}.name", max_length=SECTION_NAME_LENGTH)
        if name in names:
            raise BadUserInput(f"Section {name!r} appears twice", field=f"{where}.name")
        names.add(name)
        seats = _section_seats(section, name, where, budget=MAX_SEATS - total)
        if not seats:
            raise BadUserInput(f"Section {name!r} has no seats", field=f"{where}.rows")
        total += len(seats)
        placed_sections.append((name, seats))
    return _lay_out(placed_sections)


def _section_seats(section: SectionSpec, name: str, where: str, *, budget: int) -> list[_Placed]:
    seats: list[_Placed] = []
    taken: set[tuple[str, int]] = set()
    rows: dict[str, int] = {}

    def add(row: str, number: int, spec: SeatSpec | None, field: str) -> None:
        if (row, number) in taken:
            raise BadUserInput(f"Seat {name}-{row}-{number} appears twice", field=field)
        if len(taken) >= budget:
            raise BadUserInput(f"A seat map has at most {MAX_SEATS} seats", field=field)
        taken.add((row, number))
        row_index = rows.setdefault(row, len(rows))
        if len(rows) > MAX_ROWS_PER_SECTION:
            raise BadUserInput(f"A section has at most {MAX_ROWS_PER_SECTION} rows", field=field)
        seats.append(_Placed(name, row, number, spec, row_index=row_index))

    for j, row in enumerate(section.rows):
        at = f"{where}.rows[{j}]"
        label = _row_label(row.label, field=f"{at}.label")
        for number in range(1, _seat_count(row.seats, field=f"{at}.seats") + 1):
            add(label, number, None, at)
    for j, row_range in enumerate(section.row_ranges):
        at = f"{where}.rowRanges[{j}]"
        count = _seat_count(row_range.seats, field=f"{at}.seats")
        labels = expand_row_range(row_range.first, row_range.last, field=f"{at}.last")
        if len(labels) > MAX_ROWS_PER_SECTION:
            raise BadUserInput(
                f"A section has at most {MAX_ROWS_PER_SECTION} rows", field=f"{at}.last"
            )
        for label in labels:
            for number in range(1, count + 1):
                add(label, number, None, at)
    for j, spec in enumerate(section.seats):
        at = f"{where}.seats[{j}]"
        label = _row_label(spec.row, field=f"{at}.row")
        validation.positive_int(spec.number, field=f"{at}.number", maximum=MAX_SEAT_NUMBER)
        if (spec.x is None) != (spec.y is None):
            missing = "y" if spec.y is None else "x"
            raise BadUserInput("Give both x and y, or neither", field=f"{at}.{missing}")
        if spec.x is not None and spec.y is not None:
            _coordinate(spec.x, field=f"{at}.x")
            _coordinate(spec.y, field=f"{at}.y")
        if spec.label is not None:
            validation.text(spec.label, field=f"{at}.label", max_length=SEAT_LABEL_LENGTH)
        add(label, spec.number, spec, at)
    return seats


def _lay_out(sections: list[tuple[str, list[_Placed]]]) -> Drawing:
    overall = _Bounds()
    layout_sections: list[dict[str, Any]] = []
    rows_out: list[dict[str, Any]] = []
    ordinal = 0
    for name, seats in sections:
        bounds = _Bounds()
        for seat in seats:
            if seat.spec is not None and seat.spec.x is not None and seat.spec.y is not None:
                seat.x, seat.y = float(seat.spec.x), float(seat.spec.y)
                bounds.add(seat.x, seat.y)
        generated = [s for s in seats if not (s.spec is not None and s.spec.x is not None)]
        if generated:
            origin_x = 0.0 if overall.empty and bounds.empty else _right_edge(overall, bounds)
            by_row: dict[int, list[_Placed]] = {}
            for seat in generated:
                by_row.setdefault(seat.row_index, []).append(seat)
            widest = max(len(row) for row in by_row.values())
            for row_index, row in by_row.items():
                row.sort(key=lambda s: s.number)
                offset = (widest - len(row)) * SEAT_PITCH / 2
                for rank, seat in enumerate(row):
                    seat.x = origin_x + offset + rank * SEAT_PITCH
                    seat.y = row_index * ROW_PITCH
                    bounds.add(seat.x, seat.y)
        overall.add(bounds.min_x, bounds.min_y)
        overall.add(bounds.max_x, bounds.max_y)
        row_order = sorted({(s.row_index, s.row) for s in seats})
        layout_sections.append(
            {
                "name": name,
                "rows": [label for _, label in row_order],
                "seatCount": len(seats),
                "bounds": bounds.as_dict(),
            }
        )
        for seat in sorted(seats, key=lambda s: (s.row_index, s.number)):
            spec = seat.spec
            rows_out.append(
                {
                    "id": new_id(),
                    "ordinal": ordinal,
                    "section": name,
                    "row_label": seat.row,
                    "number": seat.number,
                    "label": (spec.label.strip() if spec and spec.label else None)
                    or f"{name}-{seat.row}-{seat.number}",
                    "x": seat.x,
                    "y": seat.y,
                    "wheelchair": bool(spec and spec.wheelchair),
                    "companion": bool(spec and spec.companion),
                    "restricted_view": bool(spec and spec.restricted_view),
                }
            )
            ordinal += 1
    layout = {
        "version": 1,
        "sections": layout_sections,
        "bounds": overall.as_dict(),
        "seatCount": len(rows_out),
    }
    return Drawing(layout=layout, seats=rows_out)


def _right_edge(overall: _Bounds, section: _Bounds) -> float:
    edges = [b.max_x for b in (overall, section) if not b.empty]
    return max(edges) + SEAT_PITCH + SECTION_GAP


async def create_seat_map(
    *,
    db: Database,
    viewer: Viewer,
    venue_id: str,
    name: str,
    sections: Sequence[SectionSpec],
) -> SeatMap:
    """ORGANIZER of the venue's tenant, OPERATOR or AGENT. Seats are inserted in bulk in the
    same transaction as the map."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR, Role.AGENT)
    name = validation.text(name, field="name", max_length=100)
    drawing = draw(sections)
    async with db.write() as session:
        venue = await session.get(Venue, venue_id)
        if venue is None:
            raise NotFound("No such venue.", field="venueId")
        try:
            user_id = require_seat_map_writer(viewer, venue.tenant_id)
        except NotFound as exc:
            raise NotFound("No such venue.", field="venueId") from exc
        seat_map = SeatMap(
            tenant_id=venue.tenant_id,
            venue_id=venue.id,
            name=name,
            created_by=user_id,
            layout=drawing.layout,
            seat_count=len(drawing.seats),
        )
        session.add(seat_map)
        await session.flush()
        await session.exec(
            insert(Seat),
            params=[{**seat, "seat_map_id": seat_map.id} for seat in drawing.seats],
        )
        audit.record(
            session,
            viewer=viewer,
            action="seat_map.create",
            target_type="SeatMap",
            target_id=seat_map.id,
            tenant_id=venue.tenant_id,
            after={"name": name, "venueId": venue.id, "seatCount": seat_map.seat_count},
        )
    return seat_map


def can_manage(viewer: Viewer, seat_map: SeatMap) -> bool:
    return is_agent(viewer) or viewer.can_staff(seat_map.tenant_id)


async def get_seat_map(*, db: Database, viewer: Viewer, seat_map_id: str) -> SeatMap:
    """For the back office (its tenant's staff, agents, operators); the public sees seat maps
    through the sessions that sell them."""
    async with db.read() as session:
        seat_map = await session.get(SeatMap, seat_map_id)
    if seat_map is None or not can_manage(viewer, seat_map):
        viewer.require_user()
        raise NotFound("No such seat map.")
    return seat_map


async def seat_maps_of_venue(*, db: Database, venue_id: str) -> list[SeatMap]:
    async with db.read() as session:
        rows = await session.exec(
            select(SeatMap).where(SeatMap.venue_id == venue_id).order_by(col(SeatMap.created_at))
        )
        return list(rows.all())


async def load_seats(*, db: Database, cache: CatalogCache, seat_map_id: str) -> list[Seat]:
    """Every seat of a map in drawing order. Seat maps never change, so the list is cached
    like hot catalog reads (many buyers open the same map during an on-sale)."""

    async def load() -> list[Seat]:
        async with db.read() as session:
            rows = await session.exec(
                select(Seat).where(Seat.seat_map_id == seat_map_id).order_by(col(Seat.ordinal))
            )
            return list(rows.all())

    return await cache.get_or_load(("seats", seat_map_id), load)


def packed_seats(seats: Sequence[Seat]) -> dict[str, Any]:
    """The compact form of a seat list: parallel arrays, sections and rows as indexes into
    ``sections`` and each section's ``rows`` (strawberry builds no object per seat)."""
    sections: list[str] = []
    section_index: dict[str, int] = {}
    rows: list[list[str]] = []
    row_index: list[dict[str, int]] = []
    out: dict[str, list[Any]] = {
        k: [] for k in ("ids", "section", "row", "number", "x", "y", "flags", "labels")
    }
    for seat in seats:
        s = section_index.get(seat.section)
        if s is None:
            s = section_index[seat.section] = len(sections)
            sections.append(seat.section)
            rows.append([])
            row_index.append({})
        r = row_index[s].get(seat.row_label)
        if r is None:
            r = row_index[s][seat.row_label] = len(rows[s])
            rows[s].append(seat.row_label)
        out["ids"].append(seat.id)
        out["section"].append(s)
        out["row"].append(r)
        out["number"].append(seat.number)
        out["x"].append(seat.x)
        out["y"].append(seat.y)
        out["flags"].append(
            (1 if seat.wheelchair else 0)
            | (2 if seat.companion else 0)
            | (4 if seat.restricted_view else 0)
        )
        out["labels"].append(seat.label)
    return {
        "sections": sections,
        "rows": rows,
        "flagBits": {"wheelchair": 1, "companion": 2, "restrictedView": 4},
        **out,
    }
