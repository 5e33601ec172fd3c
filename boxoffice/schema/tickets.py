"""GraphQL types of tickets, check-in, scanner bundles and printing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from boxoffice.models import tickets as m
from boxoffice.models.identity import Role
from boxoffice.schema.catalog import Event, Seat, Session, TicketTier
from boxoffice.schema.context import Info
from boxoffice.schema.money import Money
from boxoffice.schema.pagination import Connection
from boxoffice.services.check_ins import CheckInResult as CheckInOutcome
from boxoffice.services.check_ins import OfflineScanInput as OfflineScan
from boxoffice.services.ticket_delivery import PrintedTicket as PrintData
from boxoffice.services.ticket_qr import qr_svg
from boxoffice.services.ticket_signing import ScannerBundle as Bundle
from boxoffice.services.tickets import can_see_payload

if TYPE_CHECKING:
    from boxoffice.schema.orders import Order

for _enum in (m.TicketStatus, m.CheckInSource):
    strawberry.enum(_enum)


@strawberry.type(description="An admission: when, where and how a ticket was checked in.")
class CheckIn:
    at: datetime
    gate: str | None
    device_id: str | None
    source: m.CheckInSource

    @classmethod
    def from_model(cls, check_in: m.CheckIn) -> CheckIn:
        return cls(
            at=check_in.scanned_at,
            gate=check_in.gate,
            device_id=check_in.device_id,
            source=check_in.source,
        )


@strawberry.type(description="A signed e-ticket: one per seat or general-admission unit.")
class Ticket:
    id: strawberry.ID
    ticket_sn: str = strawberry.field(description="The ticket's serial number (unguessable).")
    status: m.TicketStatus
    order_id: strawberry.ID
    event_id: strawberry.ID
    session_id: strawberry.ID
    tier_id: strawberry.ID
    tier_name: str
    seat_label: str | None = strawberry.field(description="Null for general admission.")
    price: Money = strawberry.field(description="What this unit cost after discounts.")
    issued_at: datetime
    valid_from: datetime = strawberry.field(description="The signed validity window's start.")
    valid_until: datetime = strawberry.field(description="The signed validity window's end.")
    printed_at: datetime | None
    revoked_at: datetime | None
    revoke_reason: str | None
    reissued_from_id: strawberry.ID | None = strawberry.field(
        description="The ticket this one replaced (re-issue)."
    )
    _model: strawberry.Private[m.Ticket]

    @classmethod
    def from_model(cls, ticket: m.Ticket) -> Ticket:
        return cls(
            id=strawberry.ID(ticket.id),
            ticket_sn=ticket.ticket_sn,
            status=ticket.status,
            order_id=strawberry.ID(ticket.order_id),
            event_id=strawberry.ID(ticket.event_id),
            session_id=strawberry.ID(ticket.session_id),
            tier_id=strawberry.ID(ticket.tier_id),
            tier_name=ticket.tier_name,
            seat_label=ticket.seat_label,
            price=Money.from_minor(ticket.price_minor, ticket.currency),
            issued_at=ticket.issued_at,
            valid_from=ticket.not_before,
            valid_until=ticket.expires_at,
            printed_at=ticket.printed_at,
            revoked_at=ticket.revoked_at,
            revoke_reason=ticket.revoke_reason,
            reissued_from_id=strawberry.ID(ticket.reissued_from) if ticket.reissued_from else None,
            _model=ticket,
        )

    async def _sees_payload(self, info: Info) -> bool:
        return can_see_payload(await info.context.viewer(), self._model)

    @strawberry.field(
        description="The signed payload the QR code carries (API.md): for the holder, the "
        "tenant's organizers, agents and operators; null for anyone else."
    )
    async def qr_payload(self, info: Info) -> str | None:
        return self._model.qr_payload if await self._sees_payload(info) else None

    @strawberry.field(description="`qrPayload` as a scalable SVG QR code (same visibility).")
    async def qr_svg(self, info: Info) -> str | None:
        return qr_svg(self._model.qr_payload) if await self._sees_payload(info) else None

    @strawberry.field(description="The seat; null for general admission.")
    async def seat(self, info: Info) -> Seat | None:
        if self._model.seat_id is None:
            return None
        seat = await info.context.loaders.seat_by_id.load(self._model.seat_id)
        if seat is None:
            return None
        return Seat(
            id=strawberry.ID(seat.id),
            section=seat.section,
            row=seat.row_label,
            number=seat.number,
            label=seat.label,
            x=seat.x,
            y=seat.y,
            wheelchair=seat.wheelchair,
            companion=seat.companion,
            restricted_view=seat.restricted_view,
            tier_id=strawberry.ID(self._model.tier_id),
        )

    @strawberry.field
    async def tier(self, info: Info) -> TicketTier | None:
        found = await info.context.loaders.tier_by_id.load(self._model.tier_id)
        return TicketTier.from_model(found) if found else None

    @strawberry.field
    async def session(self, info: Info) -> Session | None:
        found = await info.context.loaders.session_by_id.load(self._model.session_id)
        return Session.from_model(found) if found else None

    @strawberry.field
    async def event(self, info: Info) -> Event | None:
        found = await info.context.loaders.event_by_id.load(self._model.event_id)
        return Event.from_model(found) if found else None

    @strawberry.field(description="The order (its buyer and the tenant's organizers see it).")
    async def order(
        self, info: Info
    ) -> Annotated[Order, strawberry.lazy("boxoffice.schema.orders")] | None:
        from boxoffice.schema.orders import Order

        viewer = await info.context.viewer()
        found = await info.context.loaders.order_by_id.load(self._model.order_id)
        if found is None:
            return None
        if found.user_id != viewer.user_id and not viewer.can_staff(
            found.tenant_id, Role.ORGANIZER
        ):
            return None
        return Order.from_model(found)

    @strawberry.field(description="The ticket's check-in, once it was admitted.")
    async def check_in(self, info: Info) -> CheckIn | None:
        found = await info.context.loaders.check_in_by_ticket.load(self._model.id)
        return CheckIn.from_model(found) if found else None


@strawberry.type(name="TicketConnection")
class TicketConnection(Connection[Ticket]):
    pass


@strawberry.type(
    description="One scan's answer. Refusals are `ok: false` with a `code` — SIGNATURE_INVALID "
    "(with a `reason`: MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE, NOT_YET_VALID, EXPIRED, "
    "NOT_ISSUED), WRONG_SESSION, TICKET_REVOKED or ALREADY_CHECKED_IN (with `firstCheckIn`)."
)
class CheckInResult:
    ok: bool
    code: str | None
    reason: str | None
    message: str | None
    ticket: Ticket | None
    checked_in_at: datetime | None = strawberry.field(
        description="When the ticket was admitted (this scan's time when `ok`)."
    )
    gate: str | None = strawberry.field(description="Where the ticket was admitted.")
    first_check_in: CheckIn | None = strawberry.field(
        description="The ticket's check-in: this scan when `ok`, the earlier one otherwise."
    )
    conflict: bool = strawberry.field(
        description="Offline uploads: the ticket was admitted by more than one device or gate "
        "(as known once the whole upload was recorded)."
    )

    @classmethod
    def of(cls, result: CheckInOutcome) -> CheckInResult:
        first = result.check_in
        return cls(
            ok=result.ok,
            code=result.code,
            reason=result.reason,
            message=result.message,
            ticket=Ticket.from_model(result.ticket) if result.ticket else None,
            checked_in_at=first.scanned_at if first else None,
            gate=first.gate if first else None,
            first_check_in=CheckIn.from_model(first) if first else None,
            conflict=result.conflict,
        )


@strawberry.type
class PublicKey:
    kid: str
    key: str = strawberry.field(description="Standard base64 of the raw 32-byte Ed25519 key.")
    valid_until: datetime | None = strawberry.field(
        description="A retired key verifies tickets until then; null for the current key."
    )


@strawberry.type(
    description="What a gate needs to check a session's tickets offline (read it with "
    "`boxoffice.verifier.Bundle.parse`). Fetch it again when `version` may have grown."
)
class ScannerBundle:
    session_id: strawberry.ID
    public_keys: list[PublicKey]
    revoked: list[str] = strawberry.field(description="Serial numbers of revoked tickets.")
    version: int = strawberry.field(description="Grows with every revocation in the session.")
    generated_at: datetime

    @classmethod
    def of(cls, bundle: Bundle) -> ScannerBundle:
        return cls(
            session_id=strawberry.ID(bundle.session_id),
            public_keys=[
                PublicKey(kid=k.kid, key=k.key_base64, valid_until=k.valid_until)
                for k in bundle.public_keys
            ],
            revoked=list(bundle.revoked),
            version=bundle.version,
            generated_at=bundle.generated_at,
        )


@strawberry.input(description="A scan a gate admitted while offline.")
class OfflineScanInput:
    payload: str
    scanned_at: datetime
    device_id: str
    gate: str | None = None

    def to_service(self) -> OfflineScan:
        return OfflineScan(
            payload=self.payload,
            device_id=self.device_id,
            scanned_at=self.scanned_at,
            gate=self.gate,
        )


@strawberry.type
class CheckInSide:
    at: datetime
    gate: str | None
    device_id: str | None


@strawberry.type(description="One ticket admitted by two devices or gates.")
class CheckInConflict:
    id: strawberry.ID
    ticket_id: strawberry.ID
    ticket_sn: str
    first: CheckInSide = strawberry.field(description="The admission that stands (earliest).")
    second: CheckInSide
    created_at: datetime

    @classmethod
    def from_model(cls, row: m.CheckInConflict) -> CheckInConflict:
        return cls(
            id=strawberry.ID(row.id),
            ticket_id=strawberry.ID(row.ticket_id),
            ticket_sn=row.ticket_sn,
            first=CheckInSide(at=row.first_at, gate=row.first_gate, device_id=row.first_device_id),
            second=CheckInSide(
                at=row.second_at, gate=row.second_gate, device_id=row.second_device_id
            ),
            created_at=row.created_at,
        )


@strawberry.type(name="CheckInConflictConnection")
class CheckInConflictConnection(Connection[CheckInConflict]):
    pass


@strawberry.type(description="What goes on a printed ticket.")
class PrintedTicket:
    ticket: Ticket
    ticket_sn: str
    order_no: str
    holder_name: str | None
    event_title: str
    session_starts_at: datetime
    session_ends_at: datetime
    venue_name: str
    venue_address: str
    seat_label: str | None
    tier_name: str
    price: Money
    qr_payload: str
    printed_at: datetime
    _payload: strawberry.Private[str]

    @classmethod
    def of(cls, data: PrintData) -> PrintedTicket:
        ticket = data.ticket
        assert ticket.printed_at is not None
        return cls(
            ticket=Ticket.from_model(ticket),
            ticket_sn=ticket.ticket_sn,
            order_no=data.order_no,
            holder_name=data.holder_name,
            event_title=data.event_title,
            session_starts_at=data.session_starts_at,
            session_ends_at=data.session_ends_at,
            venue_name=data.venue_name,
            venue_address=data.venue_address,
            seat_label=ticket.seat_label,
            tier_name=ticket.tier_name,
            price=Money.from_minor(ticket.price_minor, ticket.currency),
            qr_payload=ticket.qr_payload,
            printed_at=ticket.printed_at,
            _payload=ticket.qr_payload,
        )

    @strawberry.field(description="`qrPayload` as a scalable SVG QR code.")
    def qr_svg(self) -> str:
        return qr_svg(self._payload)
