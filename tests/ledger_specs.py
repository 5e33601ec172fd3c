"""A small session layout shared by the seat-ledger tests."""

from __future__ import annotations

from boxoffice.backends.seat_ledger import SeatSpec, SessionSpec, Taken, TierSpec

SESSION = "sess-1"


def seat_id(section: str, row: int, number: int) -> str:
    return f"{section}-{row}-{number}"


def small_session(
    session_id: str = SESSION,
    *,
    taken: tuple[Taken, ...] = (),
    quotas: dict[str, int] | None = None,
) -> SessionSpec:
    """ga: 10 general admission; front: section A, rows 1-2 x 6 seats; back: section B, one row
    of 4 seats with B-1-4 blocked."""
    seats = [
        SeatSpec(seat_id("A", row, n), "front", "A", str(row), n, float(n), float(row))
        for row in (1, 2)
        for n in range(1, 7)
    ]
    seats += [
        SeatSpec(seat_id("B", 1, n), "back", "B", "1", n, 10.0 + n, 5.0, blocked=(n == 4))
        for n in range(1, 5)
    ]
    return SessionSpec(
        session_id=session_id,
        tiers=(
            TierSpec("ga", 10, seated=False, quotas=dict(quotas or {})),
            TierSpec("front", 12, seated=True),
            TierSpec("back", 4, seated=True),
        ),
        seats=tuple(seats),
        taken=taken,
    )
