"""Seat geometry for "best available": rows of seats in order, and where a section's centre is.

Both adapters use the same rule (the Redis one in Lua, from the rows this module prepares):
candidates are runs of ``n`` seats that are next to each other in a row's order, all of the
wanted tier and all available; the best run is the one whose centre is closest (squared
Euclidean distance) to its section's centre; ties go to the earlier row, then the leftmost
run. Without any such run, and only if asked, the ``n`` available seats of the tier closest to
their section's centre are taken one by one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from boxoffice.backends.seat_ledger import SeatSpec


@dataclass(frozen=True, slots=True)
class Row:
    cx: float
    cy: float
    y: float
    seat_ids: tuple[str, ...]
    xs: tuple[float, ...]


def rows_by_tier(seats: Iterable[SeatSpec]) -> dict[str, list[Row]]:
    """For each tier, every row holding at least one of its seats (whole rows, in order)."""
    by_section: dict[str, list[SeatSpec]] = defaultdict(list)
    for seat in seats:
        by_section[seat.section].append(seat)
    result: dict[str, list[Row]] = defaultdict(list)
    for section in sorted(by_section):
        members = by_section[section]
        cx = sum(s.x for s in members) / len(members)
        cy = sum(s.y for s in members) / len(members)
        by_row: dict[str, list[SeatSpec]] = defaultdict(list)
        for seat in members:
            by_row[seat.row].append(seat)
        for row_label in sorted(by_row, key=lambda r: (min(s.y for s in by_row[r]), r)):
            ordered = sorted(by_row[row_label], key=lambda s: (s.x, s.number))
            row = Row(
                cx=cx,
                cy=cy,
                y=sum(s.y for s in ordered) / len(ordered),
                seat_ids=tuple(s.seat_id for s in ordered),
                xs=tuple(s.x for s in ordered),
            )
            for tier in {s.tier_id for s in ordered}:
                result[tier].append(row)
    return dict(result)


def choose(
    rows: list[Row],
    n: int,
    usable: Callable[[str], bool],
    *,
    allow_split: bool,
) -> list[str] | None:
    """The best ``n`` seats for which ``usable(seat_id)`` holds, or None."""
    best: tuple[float, list[str]] | None = None
    for row in rows:
        run_start = 0
        count = len(row.seat_ids)
        ok = [usable(seat) for seat in row.seat_ids]
        for i in range(count):
            if not ok[i]:
                run_start = i + 1
                continue
            if i - run_start + 1 >= n:
                start = i - n + 1
                mid_x = sum(row.xs[start : i + 1]) / n
                score = (mid_x - row.cx) ** 2 + (row.y - row.cy) ** 2
                if best is None or score < best[0]:
                    best = (score, list(row.seat_ids[start : i + 1]))
    if best is not None:
        return best[1]
    if not allow_split:
        return None
    singles: list[tuple[float, str]] = []
    seen: set[str] = set()
    for row in rows:
        for seat, x in zip(row.seat_ids, row.xs, strict=True):
            if seat not in seen and usable(seat):
                seen.add(seat)
                singles.append(((x - row.cx) ** 2 + (row.y - row.cy) ** 2, seat))
    if len(singles) < n:
        return None
    singles.sort(key=lambda item: item[0])
    return [seat for _, seat in singles[:n]]


def rows_to_json(rows: list[Row]) -> list[dict[str, object]]:
    """The form the Lua scripts read (one JSON string per tier)."""
    return [{"c": [r.cx, r.cy], "y": r.y, "s": list(r.seat_ids), "x": list(r.xs)} for r in rows]
