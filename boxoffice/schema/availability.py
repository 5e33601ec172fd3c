"""What a session has left: per-tier counts and per-seat statuses, typed and packed.

Typed seat lists are capped (strawberry builds one object per seat, slow in the thousands);
``compact`` carries every seat as parallel arrays in one JSON value.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from boxoffice.errors import BadUserInput
from boxoffice.schema.enums import SeatStatus
from boxoffice.schema.scalars import BigInt
from boxoffice.services import availability

MAX_TYPED_SEATS = 5_000
STATUS_LEGEND = [s.value for s in SeatStatus]
_STATUS_CODE = {status: i for i, status in enumerate(SeatStatus)}


def seat_window(first: int, offset: int) -> slice:
    if not 0 <= first <= MAX_TYPED_SEATS:
        raise BadUserInput(
            f"first must be between 0 and {MAX_TYPED_SEATS}; use `compact` for whole maps",
            field="first",
        )
    if offset < 0:
        raise BadUserInput("offset must be ≥ 0", field="offset")
    return slice(offset, offset + first)


@strawberry.type
class TierAvailability:
    tier_id: strawberry.ID
    available: int


@strawberry.type
class SeatAvailability:
    id: strawberry.ID
    status: SeatStatus


@strawberry.type(description="A session's availability; `version` grows with every change.")
class SessionAvailability:
    session_id: strawberry.ID
    version: BigInt
    tiers: list[TierAvailability]
    seat_count: int
    _value: strawberry.Private[availability.SessionAvailability]

    @classmethod
    def from_value(cls, value: availability.SessionAvailability) -> SessionAvailability:
        return cls(
            session_id=strawberry.ID(value.session_id),
            version=BigInt(value.version),
            tiers=[TierAvailability(tier_id=strawberry.ID(t), available=n) for t, n in value.tiers],
            seat_count=len(value.seats),
            _value=value,
        )

    @strawberry.field(
        description=f"Seat statuses in drawing order (at most {MAX_TYPED_SEATS} per call)."
    )
    def seats(self, first: int = MAX_TYPED_SEATS, offset: int = 0) -> list[SeatAvailability]:
        window = seat_window(first, offset)
        return [
            SeatAvailability(id=strawberry.ID(seat_id), status=status)
            for seat_id, status in self._value.seats[window]
        ]

    @strawberry.field(
        description="Every seat packed: `{ids: [...], status: [i...], legend: [...]}` where "
        "`status[k]` indexes `legend` (AVAILABLE, HELD, SOLD, BLOCKED)."
    )
    def compact(self) -> JSON:
        packed: dict[str, Any] = {
            "ids": [seat_id for seat_id, _ in self._value.seats],
            "status": [_STATUS_CODE[status] for _, status in self._value.seats],
            "legend": STATUS_LEGEND,
        }
        return JSON(packed)
