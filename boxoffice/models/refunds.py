"""Refunds, the rules that price them, and the runs that refund a cancelled event.

A refund names the order items it gives back (``item_ids``): what they cost
(``cost_minor``, each unit's ``unit_price_minor - discount_minor``) splits into the ``fee``
the organizer keeps and the ``amount`` that goes back to the buyer, so
``amount_minor + fee_minor == cost_minor`` always.

One open refund per order: ``open_order_id`` holds the order's id while the refund is open
(PENDING, APPROVED, FAILED) and NULL once it is closed (COMPLETED, REJECTED), under a unique
constraint, so two requests racing for one order make one refund. Refunds of late payments
(money for an order that could not take it) touch no order and keep it NULL.

``processing_until`` is a short lease on the provider call: whoever sets it (a conditional
update) calls the provider; everyone else waits for the outcome. The provider refund is
idempotent on ``refund_no``, so even a lease that lapsed mid-call cannot refund twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, json_field, ref_field, time_field


class RefundStatus(StrEnum):
    PENDING = "PENDING"  # requested, awaiting the organizer's review
    APPROVED = "APPROVED"  # approved; the provider refund is under way (or pending there)
    REJECTED = "REJECTED"
    COMPLETED = "COMPLETED"  # the money went back and the tickets, seats and order followed
    FAILED = "FAILED"  # the provider refused or could not be reached: retryable


OPEN_REFUND_STATUSES = frozenset({RefundStatus.PENDING, RefundStatus.APPROVED, RefundStatus.FAILED})


class RefundSource(StrEnum):
    REQUEST = "REQUEST"  # the buyer (or the organizer on their behalf) asked
    EVENT_CANCELLED = "EVENT_CANCELLED"  # the organizer cancelled the event: no fee
    LATE_PAYMENT = "LATE_PAYMENT"  # a payment the order could not take goes back whole


class Refund(SQLModel, table=True):
    __tablename__ = "refunds"
    __table_args__ = (
        Index("ix_refunds_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_refunds_user_created", "user_id", "created_at"),
        Index("ix_refunds_status_next_attempt", "status", "next_attempt_at"),
    )

    id: str = id_field()
    refund_no: str = Field(max_length=40, unique=True)
    tenant_id: str = ref_field("tenants.id", index=False)
    order_id: str = ref_field("orders.id")
    event_id: str = ref_field("events.id")
    session_id: str = ref_field("sessions.id", index=False)
    user_id: str | None = Field(default=None, max_length=26)  # the buyer (None: box office)
    requested_by: str | None = Field(default=None, max_length=26)
    source: RefundSource = enum_field(RefundSource.REQUEST)
    status: RefundStatus = enum_field(RefundStatus.PENDING)
    reason: str | None = Field(default=None, max_length=500)
    opinion: str | None = Field(default=None, max_length=500)
    reviewed_by: str | None = Field(default=None, max_length=26)
    reviewed_at: datetime | None = time_field()
    item_ids: list[str] = json_field(list)
    cost_minor: int
    fee_minor: int = Field(default=0)
    amount_minor: int
    currency: str = Field(default="CNY", max_length=3)
    payment_no: str | None = Field(default=None, max_length=32)
    method: str | None = Field(default=None, max_length=16)  # provider channel or counter method
    provider_refund_no: str | None = Field(default=None, max_length=64)
    provider_status: str | None = Field(default=None, max_length=16)
    failure: str | None = Field(default=None, max_length=200)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = time_field()
    processing_until: datetime | None = time_field()
    open_order_id: str | None = Field(default=None, max_length=26, unique=True)
    run_id: str | None = Field(default=None, max_length=26, index=True)
    seats_returned_at: datetime | None = time_field()
    completed_at: datetime | None = time_field()
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class RefundPolicy(SQLModel, table=True):
    """A tenant's refund rules (``event_id`` NULL) or one event's override.

    ``fee_tiers``: ``[{"hoursBefore": h, "percentBp": p, "fixedMinor": f}, ...]``; the tier
    with the largest ``hoursBefore`` not above the hours left before the session applies:
    its fee is ``p`` basis points of what the units cost plus ``f`` per unit, at most the
    cost. No refunds at all within ``deadline_hours`` of the session's start."""

    __tablename__ = "refund_policies"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    event_id: str | None = ref_field("events.id", index=False, nullable=True)
    scope_id: str = Field(max_length=26, unique=True)  # the event's id, else the tenant's
    refundable: bool = Field(default=True)
    deadline_hours: int = Field(default=48)
    fee_tiers: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON, nullable=False)
    updated_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class EventRefundRunStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"  # every paid order of the event is refunded


class EventRefundRun(SQLModel, table=True):
    """The background refund of a cancelled event's paid orders: one per event. Its
    progress is read from its refunds (``Refund.run_id``)."""

    __tablename__ = "event_refund_runs"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id", index=False)
    event_id: str = ref_field("events.id", index=False, unique=True)
    status: EventRefundRunStatus = enum_field(EventRefundRunStatus.RUNNING)
    reason: str | None = Field(default=None, max_length=500)
    requested_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    finished_at: datetime | None = time_field()
    updated_at: datetime = time_field(now=True)
