"""The transactional outbox: domain events written in the same transaction as the change
they describe, delivered later to each consumer (tickets, notifications, webhooks, stats)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, time_field

SEQ_TYPE = Integer().with_variant(BigInteger(), "postgresql")


class OutboxEvent(SQLModel, table=True):
    """``seq`` orders events (the ``changes`` feed's cursor); ``event_id`` is the public,
    globally unique id integrators deduplicate on."""

    __tablename__ = "outbox_events"

    seq: int | None = Field(
        default=None, sa_column=Column(SEQ_TYPE, primary_key=True, autoincrement=True)
    )
    event_id: str = Field(max_length=26, unique=True)
    topic: str = Field(max_length=64, index=True)
    tenant_id: str | None = Field(default=None, max_length=26, index=True)
    aggregate_type: str = Field(max_length=32)
    aggregate_id: str = Field(max_length=64, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON, nullable=False)
    created_at: datetime = time_field(now=True, index=True)


class DeliveryStatus(StrEnum):
    PENDING = "PENDING"  # failed at least once, retried at next_attempt_at
    DONE = "DONE"
    DEAD = "DEAD"  # gave up; visible to operators, can be retried by hand


class OutboxDelivery(SQLModel, table=True):
    """One consumer's progress on one event. No row: not tried yet."""

    __tablename__ = "outbox_deliveries"
    __table_args__ = (UniqueConstraint("event_seq", "consumer"),)

    id: int | None = Field(
        default=None, sa_column=Column(SEQ_TYPE, primary_key=True, autoincrement=True)
    )
    event_seq: int = Field(
        sa_column=Column(SEQ_TYPE, ForeignKey("outbox_events.seq"), nullable=False, index=True)
    )
    consumer: str = Field(max_length=32, index=True)
    status: DeliveryStatus = enum_field(DeliveryStatus.PENDING, index=True)
    attempts: int = Field(default=0)
    next_attempt_at: datetime | None = time_field(index=True)
    last_error: str | None = Field(default=None, max_length=1000)
    done_at: datetime | None = time_field()
    updated_at: datetime = time_field(now=True)


class OutboxCursor(SQLModel, table=True):
    """Every event below ``seq`` is finished (DONE or DEAD) for ``consumer``: the dispatcher
    scans from here instead of from the beginning."""

    __tablename__ = "outbox_cursors"

    consumer: str = Field(max_length=32, primary_key=True)
    seq: int = Field(default=0, sa_column=Column(SEQ_TYPE, nullable=False, default=0))
    updated_at: datetime = time_field(now=True)
