"""E-tickets, their check-ins, offline gate scans, signing keys and revocation versions.

One ticket per order item: ``order_item_id`` is unique, so issuing twice (an outbox event
delivered again, a consumer re-run after a crash) cannot make a second ticket for a unit. A
re-issued ticket hands the item link to its successor (``reissued_from`` points back), so the
item still has exactly one current ticket.

One check-in per ticket: ``check_ins.ticket_id`` is unique. Offline scans are kept per
``(ticket, device, scanned_at)``, so uploading the same scans again changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, ref_field, time_field


class TicketStatus(StrEnum):
    VALID = "VALID"
    USED = "USED"
    REVOKED = "REVOKED"


class CheckInSource(StrEnum):
    ONLINE = "ONLINE"
    OFFLINE = "OFFLINE"


class ScanOutcome(StrEnum):
    """What an uploaded offline scan turned out to be."""

    CHECKED_IN = "CHECKED_IN"  # the ticket's (earliest) check-in
    DUPLICATE = "DUPLICATE"  # a later scan by the same device at the same gate
    CONFLICT = "CONFLICT"  # the ticket was also admitted by another device or gate
    REVOKED = "REVOKED"  # the ticket had been revoked


class Ticket(SQLModel, table=True):
    """A signed e-ticket. ``qr_payload`` is the signed payload exactly as issued; ``kid`` and
    ``nonce`` are copies of its fields. Tier, seat label and price are snapshots from the
    order item."""

    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_user_issued", "user_id", "issued_at"),
        Index("ix_tickets_session_status", "session_id", "status"),
    )

    id: str = id_field()
    ticket_sn: str = Field(max_length=24, unique=True)
    order_id: str = ref_field("orders.id")
    order_item_id: str | None = ref_field("order_items.id", index=False, nullable=True, unique=True)
    tenant_id: str = ref_field("tenants.id", index=False)
    event_id: str = ref_field("events.id", index=False)
    session_id: str = ref_field("sessions.id", index=False)
    tier_id: str = ref_field("ticket_tiers.id", index=False)
    seat_id: str | None = ref_field("seats.id", index=False, nullable=True)
    user_id: str | None = ref_field("users.id", index=False, nullable=True)
    tier_name: str = Field(max_length=64)
    seat_label: str | None = Field(default=None, max_length=64)
    price_minor: int
    currency: str = Field(default="CNY", max_length=3)
    status: TicketStatus = enum_field(TicketStatus.VALID)
    kid: str = Field(max_length=16)
    nonce: str = Field(max_length=32)
    qr_payload: str = Field(sa_type=Text)
    issued_at: datetime = time_field(nullable=False)
    not_before: datetime = time_field(nullable=False)
    expires_at: datetime = time_field(nullable=False)
    printed_at: datetime | None = time_field()
    printed_by: str | None = Field(default=None, max_length=26)
    revoked_at: datetime | None = time_field()
    revoke_reason: str | None = Field(default=None, max_length=500)
    reissued_from: str | None = ref_field("tickets.id", index=False, nullable=True)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class CheckIn(SQLModel, table=True):
    """A ticket's admission: the earliest scan that let its holder in."""

    __tablename__ = "check_ins"

    id: str = id_field()
    ticket_id: str = ref_field("tickets.id", index=False, unique=True)
    tenant_id: str = ref_field("tenants.id", index=False)
    session_id: str = ref_field("sessions.id")
    gate: str | None = Field(default=None, max_length=64)
    device_id: str | None = Field(default=None, max_length=64)
    source: CheckInSource = enum_field(CheckInSource.ONLINE)
    scanned_at: datetime = time_field(nullable=False)
    recorded_at: datetime = time_field(now=True)
    checked_in_by: str | None = Field(default=None, max_length=26)
    offline_scan_id: str | None = Field(default=None, max_length=26)


class OfflineScan(SQLModel, table=True):
    """A scan a gate made without a network, uploaded later (kept once per device and time)."""

    __tablename__ = "offline_scans"
    __table_args__ = (UniqueConstraint("ticket_id", "device_id", "scanned_at"),)

    id: str = id_field()
    ticket_id: str = ref_field("tickets.id", index=False)
    tenant_id: str = ref_field("tenants.id", index=False)
    session_id: str = ref_field("sessions.id")
    device_id: str = Field(max_length=64)
    gate: str | None = Field(default=None, max_length=64)
    scanned_at: datetime = time_field(nullable=False)
    outcome: ScanOutcome = enum_field(ScanOutcome.CHECKED_IN)
    uploaded_at: datetime = time_field(now=True)
    uploaded_by: str | None = Field(default=None, max_length=26)


class CheckInConflict(SQLModel, table=True):
    """One ticket admitted twice, by different devices or gates (at least one offline): the
    organizer's to look into. ``first_*`` is the check-in that stands (the earliest)."""

    __tablename__ = "check_in_conflicts"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id", index=False)
    session_id: str = ref_field("sessions.id")
    ticket_id: str = ref_field("tickets.id")
    ticket_sn: str = Field(max_length=24)
    first_at: datetime = time_field(nullable=False)
    first_gate: str | None = Field(default=None, max_length=64)
    first_device_id: str | None = Field(default=None, max_length=64)
    second_at: datetime = time_field(nullable=False)
    second_gate: str | None = Field(default=None, max_length=64)
    second_device_id: str | None = Field(default=None, max_length=64)
    offline_scan_id: str = Field(max_length=26, unique=True)
    created_at: datetime = time_field(now=True)


class TicketKeyRecord(SQLModel, table=True):
    """A signing key's public half. ``valid_until`` is the latest ``exp`` of a ticket it
    signed: after a rotation the key keeps verifying until then."""

    __tablename__ = "ticket_keys"

    kid: str = Field(primary_key=True, max_length=16)
    public_key: str = Field(max_length=64)  # standard base64 of the raw 32 bytes
    created_at: datetime = time_field(now=True)
    valid_until: datetime | None = time_field()


class RevocationVersion(SQLModel, table=True):
    """Grows whenever a ticket of the session is revoked (the scanner bundle's ``version``)."""

    __tablename__ = "ticket_revocation_versions"

    session_id: str = ref_field("sessions.id", index=False, primary_key=True)
    version: int = Field(default=0)
    updated_at: datetime = time_field(now=True)
