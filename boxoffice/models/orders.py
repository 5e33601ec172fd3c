"""Orders, their items, idempotency keys, payments and the audit of provider callbacks.

A live order item (the order is unpaid or paid, the item not refunded) owns its seat: a
partial unique index on ``(session_id, seat_id) WHERE live`` makes selling a seat twice
impossible, whatever the ledger in front of the database says.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Index, Text, UniqueConstraint, event, text
from sqlmodel import Field, SQLModel

from boxoffice import pii
from boxoffice.models.base import (
    changed,
    encrypted_field,
    enum_field,
    id_field,
    lookup_hash_field,
    ref_field,
    time_field,
)


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    COMPLETED = "COMPLETED"


class SalesChannel(StrEnum):
    ONLINE = "ONLINE"
    BOX_OFFICE = "BOX_OFFICE"
    AGENT = "AGENT"


class ItemStatus(StrEnum):
    ACTIVE = "ACTIVE"  # unpaid or paid
    RELEASED = "RELEASED"  # the order was cancelled or expired
    REFUNDED = "REFUNDED"


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_user_created", "user_id", "created_at"),
        Index("ix_orders_tenant_status_created", "tenant_id", "status", "created_at"),
        Index("ix_orders_status_expires", "status", "expires_at"),
    )

    id: str = id_field()
    order_no: str = Field(max_length=24, unique=True)
    tenant_id: str = ref_field("tenants.id", index=False)
    user_id: str | None = ref_field("users.id", index=False, nullable=True)
    event_id: str = ref_field("events.id")
    session_id: str = ref_field("sessions.id")
    status: OrderStatus = enum_field(OrderStatus.PENDING_PAYMENT)
    channel: SalesChannel = enum_field(SalesChannel.ONLINE)
    channel_code: str | None = Field(default=None, max_length=64)
    currency: str = Field(default="CNY", max_length=3)
    subtotal_minor: int
    promotion_discount_minor: int = Field(default=0)
    coupon_discount_minor: int = Field(default=0)
    total_minor: int
    refunded_minor: int = Field(default=0)
    contact_name: str | None = encrypted_field()
    contact_phone: str | None = encrypted_field()
    contact_phone_hash: str | None = lookup_hash_field()
    hold_id: str = Field(max_length=64, unique=True)
    user_coupon_id: str | None = Field(default=None, max_length=26, index=True)
    promotion_id: str | None = Field(default=None, max_length=26)
    payment_method: str | None = Field(default=None, max_length=16)
    expires_at: datetime | None = time_field()
    paid_at: datetime | None = time_field()
    cancelled_at: datetime | None = time_field()
    cancel_reason: str | None = Field(default=None, max_length=500)
    completed_at: datetime | None = time_field()
    printed_at: datetime | None = time_field()
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class OrderItem(SQLModel, table=True):
    """One unit: a seat, or one general-admission ticket. It becomes one ticket when paid."""

    __tablename__ = "order_items"
    __table_args__ = (
        Index(
            "uq_order_items_live_seat",
            "session_id",
            "seat_id",
            unique=True,
            postgresql_where=text("live AND seat_id IS NOT NULL"),
            sqlite_where=text("live AND seat_id IS NOT NULL"),
        ),
    )

    id: str = id_field()
    order_id: str = ref_field("orders.id")
    session_id: str = ref_field("sessions.id", index=False)
    tier_id: str = ref_field("ticket_tiers.id")
    seat_id: str | None = ref_field("seats.id", index=False, nullable=True)
    tier_name: str = Field(max_length=64)
    seat_label: str | None = Field(default=None, max_length=64)
    unit_price_minor: int
    discount_minor: int = Field(default=0)
    live: bool = Field(default=True)
    status: ItemStatus = enum_field(ItemStatus.ACTIVE)

    @property
    def paid_minor(self) -> int:
        return self.unit_price_minor - self.discount_minor


class IdempotencyKey(SQLModel, table=True):
    """A client's idempotency key, per user and operation, kept at least 24 hours. It
    remembers the request's fingerprint and its outcome (the order, or the error)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "operation", "key"),)

    id: str = id_field()
    user_id: str = ref_field("users.id", index=False)
    operation: str = Field(max_length=32)
    key: str = Field(max_length=255)
    request_hash: str = Field(max_length=64)
    order_id: str | None = Field(default=None, max_length=26)
    error: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    created_at: datetime = time_field(now=True)
    expires_at: datetime = time_field(nullable=False, index=True)


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CLOSED = "CLOSED"
    REFUND_PENDING = "REFUND_PENDING"  # paid for an order that could not take it: refund due
    REFUNDED = "REFUNDED"


class Payment(SQLModel, table=True):
    __tablename__ = "payments"

    id: str = id_field()
    payment_no: str = Field(max_length=32, unique=True)
    order_id: str = ref_field("orders.id")
    tenant_id: str = ref_field("tenants.id", index=False)
    user_id: str | None = Field(default=None, max_length=26)
    channel: str = Field(max_length=16)
    amount_minor: int
    currency: str = Field(max_length=3)
    status: PaymentStatus = enum_field(PaymentStatus.PENDING, index=True)
    provider_trade_no: str | None = Field(default=None, max_length=64)
    paid_at: datetime | None = time_field()
    last_queried_at: datetime | None = time_field()
    created_at: datetime = time_field(now=True, index=True)
    updated_at: datetime = time_field(now=True)


class CallbackVerdict(StrEnum):
    APPLIED = "APPLIED"
    DUPLICATE = "DUPLICATE"
    REJECTED = "REJECTED"
    IGNORED = "IGNORED"  # genuine but changes nothing (e.g. a buyer still paying)
    REFUND_SCHEDULED = "REFUND_SCHEDULED"  # paid, but the order could not be revived


class PaymentCallback(SQLModel, table=True):
    """Every provider callback, accepted or not, as it arrived."""

    __tablename__ = "payment_callbacks"

    id: str = id_field()
    channel: str = Field(max_length=16, index=True)
    payment_no: str | None = Field(default=None, max_length=64, index=True)
    verdict: CallbackVerdict = enum_field(CallbackVerdict.REJECTED)
    reason: str | None = Field(default=None, max_length=200)
    outcome: str | None = Field(default=None, max_length=16)
    amount_minor: int | None = None
    headers: dict[str, str] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    body: str = Field(default="", sa_type=Text)
    remote_ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field(now=True, index=True)


class ChannelAllocation(SQLModel, table=True):
    """Units of a tier set aside for a sales channel (配票): public holds cannot take them."""

    __tablename__ = "channel_allocations"
    __table_args__ = (UniqueConstraint("session_id", "tier_id", "channel"),)

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id", index=False)
    session_id: str = ref_field("sessions.id")
    tier_id: str = ref_field("ticket_tiers.id", index=False)
    channel: str = Field(max_length=64)
    quantity: int
    allocated_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


@event.listens_for(Order, "before_insert")
@event.listens_for(Order, "before_update")
def _contact_phone_hash(_mapper: Any, _connection: Any, order: Order) -> None:
    if changed(order, "contact_phone"):
        order.contact_phone_hash = pii.phone_hash(order.contact_phone)
