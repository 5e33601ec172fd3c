"""GraphQL types of holds, live availability and channel allocations."""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from boxoffice.models.events import SeatStatus
from boxoffice.models.orders import ChannelAllocation as ChannelAllocationModel
from boxoffice.schema.availability import (
    MAX_TYPED_SEATS,
    STATUS_LEGEND,
    SeatAvailability,
    TierAvailability,
    seat_window,
)
from boxoffice.schema.money import Money
from boxoffice.schema.scalars import BigInt
from boxoffice.services.availability_feed import AvailabilityUpdate as FeedUpdate
from boxoffice.services.inventory import HoldView

LETTER_STATUS = {
    "A": SeatStatus.AVAILABLE,
    "H": SeatStatus.HELD,
    "S": SeatStatus.SOLD,
    "B": SeatStatus.BLOCKED,
}
LETTER_CODE = {
    letter: STATUS_LEGEND.index(status.value) for letter, status in LETTER_STATUS.items()
}


@strawberry.type(description="A seat in a hold.")
class HeldSeat:
    id: strawberry.ID
    section: str
    row: str
    number: int
    label: str
    tier_id: strawberry.ID


@strawberry.type
class HoldItem:
    tier_id: strawberry.ID
    tier_name: str
    quantity: int
    unit_price: Money
    subtotal: Money


@strawberry.type(description="Seats or units set aside for the caller until `expiresAt`.")
class Hold:
    token: str
    session_id: strawberry.ID
    event_id: strawberry.ID
    seats: list[HeldSeat]
    items: list[HoldItem]
    quantity: int
    total: Money
    expires_at: datetime

    @classmethod
    def from_view(cls, view: HoldView) -> Hold:
        return cls(
            token=view.token,
            session_id=strawberry.ID(view.session_id),
            event_id=strawberry.ID(view.event_id),
            seats=[
                HeldSeat(
                    id=strawberry.ID(s.seat_id),
                    section=s.section,
                    row=s.row,
                    number=s.number,
                    label=s.label,
                    tier_id=strawberry.ID(s.tier_id),
                )
                for s in view.seats
            ],
            items=[
                HoldItem(
                    tier_id=strawberry.ID(i.tier_id),
                    tier_name=i.tier_name,
                    quantity=i.quantity,
                    unit_price=Money.from_minor(i.unit_price_minor, view.currency),
                    subtotal=Money.from_minor(i.subtotal_minor, view.currency),
                )
                for i in view.items
            ],
            quantity=view.quantity,
            total=Money.from_minor(view.total_minor, view.currency),
            expires_at=view.expires_at,
        )


@strawberry.input
class CreateHoldInput:
    session_id: strawberry.ID
    tier_id: strawberry.ID | None = None
    quantity: int | None = strawberry.field(
        default=None, description="General admission, or the best available seats of a seated tier."
    )
    seat_ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Chosen seats."
    )
    queue_token: str | None = strawberry.field(
        default=None, description="Required on queue-enabled sessions (from `queueStatus`)."
    )
    allow_split: bool = strawberry.field(
        default=False, description="Best available: accept seats that are not together."
    )
    channel: str | None = strawberry.field(
        default=None, description="AGENT only: hold from this channel's allocation."
    )


_MADE: OrderedDict[int, tuple[FeedUpdate, AvailabilityUpdate]] = OrderedDict()


@strawberry.type(
    description="A change of a session's availability. The first message is a snapshot "
    "(`snapshot: true`, every tier and seat); later ones carry what changed since "
    "`previousVersion`. Apply an update when `previousVersion` ≤ the version you hold; if it "
    "is larger you missed something: re-read `sessionAvailability`."
)
class AvailabilityUpdate:
    session_id: strawberry.ID
    version: BigInt
    previous_version: BigInt | None
    snapshot: bool
    tiers: list[TierAvailability]
    _update: strawberry.Private[FeedUpdate]

    @classmethod
    def from_update(cls, update: FeedUpdate) -> AvailabilityUpdate:
        """One object per feed update, whoever subscribes: every subscriber of a session is
        handed the same update, and equal objects let ``fast_events`` share the answer."""
        made = _MADE.get(id(update))
        if made is not None and made[0] is update:
            return made[1]
        fresh = cls._build(update)
        _MADE[id(update)] = (update, fresh)  # the update is kept, so its id is not reused
        if len(_MADE) > 64:
            _MADE.popitem(last=False)
        return fresh

    @classmethod
    def _build(cls, update: FeedUpdate) -> AvailabilityUpdate:
        return cls(
            session_id=strawberry.ID(update.session_id),
            version=BigInt(update.version),
            previous_version=None
            if update.previous_version is None
            else BigInt(update.previous_version),
            snapshot=update.snapshot,
            tiers=[
                TierAvailability(tier_id=strawberry.ID(t), available=n)
                for t, n in update.tiers.items()
            ],
            _update=update,
        )

    @strawberry.field(
        description=f"Changed (or, in a snapshot, all) seats; at most {MAX_TYPED_SEATS}."
    )
    def seats(self, first: int = MAX_TYPED_SEATS, offset: int = 0) -> list[SeatAvailability]:
        window = seat_window(first, offset)
        items = list(self._update.seats.items())[window]
        return [SeatAvailability(id=strawberry.ID(s), status=LETTER_STATUS[st]) for s, st in items]

    @strawberry.field(
        description="The same seats packed: `{ids, status, legend}` as in "
        "`SessionAvailability.compact`."
    )
    def compact(self) -> JSON:
        packed: dict[str, Any] = {
            "ids": list(self._update.seats),
            "status": [LETTER_CODE[st] for st in self._update.seats.values()],
            "legend": STATUS_LEGEND,
        }
        return JSON(packed)


@strawberry.type(description="Units of a tier set aside for a sales channel (配票).")
class ChannelAllocation:
    id: strawberry.ID
    session_id: strawberry.ID
    tier_id: strawberry.ID
    channel: str
    quantity: int
    updated_at: datetime

    @classmethod
    def from_model(cls, row: ChannelAllocationModel) -> ChannelAllocation:
        return cls(
            id=strawberry.ID(row.id),
            session_id=strawberry.ID(row.session_id),
            tier_id=strawberry.ID(row.tier_id),
            channel=row.channel,
            quantity=row.quantity,
            updated_at=row.updated_at,
        )
