"""Webhook endpoints, their signing secrets, and the deliveries of outbox events to them.

An endpoint belongs to a tenant (its organizers manage it) or, with ``tenant_id`` NULL, to the
platform (operators; it receives every tenant's events). Each outbox event an endpoint is
subscribed to becomes one delivery row (unique per endpoint and event), tried until it
succeeds or its retry window closes; every try is an attempt row.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, ForeignKey, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, json_field, ref_field, time_field
from boxoffice.models.outbox import SEQ_TYPE


class WebhookStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"  # by its owner, or because it answered 410 Gone


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"

    id: str = id_field()
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", max_length=26, index=True)
    url: str = Field(max_length=500)
    description: str | None = Field(default=None, max_length=200)
    events: list[str] = json_field(list)  # topics, or ["*"] for all
    status: WebhookStatus = enum_field(WebhookStatus.ACTIVE, index=True)
    disabled_reason: str | None = Field(default=None, max_length=200)
    consecutive_failures: int = Field(default=0)
    retry_at: datetime | None = time_field()  # the endpoint backs off until then
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class WebhookSecret(SQLModel, table=True):
    """A signing secret; the current one has no ``expires_at``, rotated-out ones keep signing
    until theirs passes (deliveries then carry one ``v1`` per valid secret)."""

    __tablename__ = "webhook_secrets"

    id: str = id_field()
    webhook_id: str = ref_field("webhook_endpoints.id")
    secret: str = Field(max_length=100)
    expires_at: datetime | None = time_field()
    created_at: datetime = time_field(now=True)


class WebhookDeliveryStatus(StrEnum):
    PENDING = "PENDING"  # not tried yet, or failed and due again at next_attempt_at
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"  # gave up (retry window over, or the endpoint answered 410)


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at"),
    )

    id: str = id_field()
    webhook_id: str = ref_field("webhook_endpoints.id", index=False)
    event_seq: int = Field(
        sa_column=Column(SEQ_TYPE, ForeignKey("outbox_events.seq"), nullable=False)
    )
    event_id: str = Field(max_length=26)
    topic: str = Field(max_length=64)
    status: WebhookDeliveryStatus = enum_field(WebhookDeliveryStatus.PENDING)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = time_field()
    give_up_at: datetime | None = time_field()  # retries stop after this (3 days by default)
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = time_field()
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class WebhookAttempt(SQLModel, table=True):
    """One HTTP request of a delivery and what came back (the body truncated)."""

    __tablename__ = "webhook_attempts"

    id: str = id_field()
    delivery_id: str = ref_field("webhook_deliveries.id")
    webhook_id: str = Field(max_length=26)
    url: str = Field(max_length=500)
    succeeded: bool = Field(default=False)
    status_code: int | None = Field(default=None)
    error: str | None = Field(default=None, max_length=500)
    duration_ms: int = Field(default=0)
    response_body: str | None = Field(default=None, max_length=2048)
    attempted_at: datetime = time_field(now=True)
