"""Background jobs over many people (issuing a coupon to a list of users).

A job has one item per person, written with the job. A worker settles each PENDING item in
its own transaction together with the work it stands for, so a worker that dies, or runs
twice, never does one person's work twice: progress is the count of settled items.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, ref_field, time_field


class BatchJobKind(StrEnum):
    COUPON_ISSUE = "COUPON_ISSUE"


class BatchJobStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"  # every item settled, successfully or not


class BatchItemStatus(StrEnum):
    PENDING = "PENDING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class BatchJob(SQLModel, table=True):
    __tablename__ = "batch_jobs"

    id: str = id_field()
    kind: BatchJobKind = enum_field(BatchJobKind.COUPON_ISSUE)
    status: BatchJobStatus = enum_field(BatchJobStatus.PENDING)
    tenant_id: str | None = Field(default=None, max_length=26, index=True)
    subject_id: str = Field(max_length=26, index=True)  # the coupon, for COUPON_ISSUE
    total: int
    succeeded: int = Field(default=0)
    failed: int = Field(default=0)
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    started_at: datetime | None = time_field()
    finished_at: datetime | None = time_field()
    updated_at: datetime = time_field(now=True)


class BatchJobItem(SQLModel, table=True):
    """One person of a job. ``user_id`` is as given (no foreign key): an unknown id is a
    failed item, not a failed job."""

    __tablename__ = "batch_job_items"
    __table_args__ = (
        UniqueConstraint("job_id", "user_id"),
        UniqueConstraint("job_id", "position"),
        Index("ix_batch_job_items_job_status_position", "job_id", "status", "position"),
    )

    id: str = id_field()
    job_id: str = ref_field("batch_jobs.id", index=False)
    position: int
    user_id: str = Field(max_length=64)
    status: BatchItemStatus = enum_field(BatchItemStatus.PENDING)
    reason: str | None = Field(default=None, max_length=32)
    result_id: str | None = Field(default=None, max_length=26)  # e.g. the user coupon
    processed_at: datetime | None = time_field()
