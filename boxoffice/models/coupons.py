"""Coupons (templates with stock), the coupons people hold, and event promotions.

A ``Coupon`` is a template: what it takes off, where it applies, when, and how many exist.
Claiming or issuing one gives a person a ``UserCoupon`` (one row per unit held). Two counters
make claiming atomic under any concurrency, each changed by a conditional ``UPDATE``:
``coupons.claimed`` (``WHERE claimed < total_quantity``) and ``coupon_holders.claimed`` per
person (``WHERE claimed < per_user_limit``); ``(coupon_id, user_id, seq)`` is unique besides.

A ``UserCoupon`` is UNUSED or USED (locked to an order: ``order_id``); EXPIRED is never
stored, it is an UNUSED one whose coupon ended or whose window closed.

A ``Promotion`` is an event's automatic discount (满减 or a percentage), applied to every
order of the event before any coupon.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, ref_field, time_field


class CouponKind(StrEnum):
    FIXED = "FIXED"  # an amount off
    PERCENT = "PERCENT"  # a percentage off, capped by max_discount


class CouponScope(StrEnum):
    PLATFORM = "PLATFORM"  # any order
    TENANT = "TENANT"  # orders of one tenant
    EVENT = "EVENT"  # orders of one event
    TIER = "TIER"  # the units of one ticket tier


class CouponStatus(StrEnum):
    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"  # no claims or issues; coupons already held stay usable
    ENDED = "ENDED"  # final: no claims, and coupons held but unused expire


class UserCouponStatus(StrEnum):
    UNUSED = "UNUSED"
    USED = "USED"
    EXPIRED = "EXPIRED"  # derived, never stored


class CouponSource(StrEnum):
    CLAIM = "CLAIM"  # the person claimed it (by id or code)
    ISSUE = "ISSUE"  # staff issued it (a batch job)


class Coupon(SQLModel, table=True):
    """Amounts are minor units; ``percent_off_bp`` is in basis points (12.5 % = 1250)."""

    __tablename__ = "coupons"
    __table_args__ = (
        CheckConstraint("claimed >= 0 AND claimed <= total_quantity", name="ck_coupons_claimed"),
        Index("ix_coupons_tenant_created", "tenant_id", "created_at"),
    )

    id: str = id_field()
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=100)
    description: str | None = Field(default=None, max_length=500)
    kind: CouponKind = enum_field(CouponKind.FIXED)
    amount_off_minor: int | None = None
    percent_off_bp: int | None = None
    max_discount_minor: int | None = None
    min_spend_minor: int = Field(default=0)
    currency: str = Field(default="CNY", max_length=3)
    scope: CouponScope = enum_field(CouponScope.PLATFORM)
    tenant_id: str | None = ref_field("tenants.id", index=False, nullable=True)
    event_id: str | None = ref_field("events.id", nullable=True)
    tier_id: str | None = ref_field("ticket_tiers.id", index=False, nullable=True)
    valid_from: datetime | None = time_field()
    valid_to: datetime | None = time_field()
    total_quantity: int
    claimed: int = Field(default=0)
    per_user_limit: int = Field(default=1)
    stackable: bool = Field(default=True)  # combines with the event's promotion
    status: CouponStatus = enum_field(CouponStatus.ACTIVE)
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class CouponHolder(SQLModel, table=True):
    """How many units of a coupon one person has taken (claimed or issued), ever."""

    __tablename__ = "coupon_holders"

    coupon_id: str = ref_field("coupons.id", index=False, primary_key=True)
    user_id: str = ref_field("users.id", primary_key=True)
    claimed: int = Field(default=0)
    updated_at: datetime = time_field(now=True)


class UserCoupon(SQLModel, table=True):
    """One unit of a coupon a person holds. ``order_id`` has no foreign key: the coupon is
    locked to an order inside the order's transaction, before the order row is written."""

    __tablename__ = "user_coupons"
    __table_args__ = (
        UniqueConstraint("coupon_id", "user_id", "seq"),
        Index("ix_user_coupons_user_status", "user_id", "status", "claimed_at"),
    )

    id: str = id_field()
    coupon_id: str = ref_field("coupons.id", index=False)
    user_id: str = ref_field("users.id", index=False)
    seq: int  # 1 .. per_user_limit: which of the person's units this is
    status: UserCouponStatus = enum_field(UserCouponStatus.UNUSED)
    source: CouponSource = enum_field(CouponSource.CLAIM)
    batch_job_id: str | None = Field(default=None, max_length=26)
    order_id: str | None = Field(default=None, max_length=26, index=True)
    claimed_at: datetime = time_field(now=True)
    used_at: datetime | None = time_field()


class PromotionKind(StrEnum):
    THRESHOLD = "THRESHOLD"  # 满减: amount off once the subtotal reaches the threshold
    PERCENT = "PERCENT"  # a percentage off (from an optional threshold), capped


class PromotionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    ENDED = "ENDED"


class Promotion(SQLModel, table=True):
    """An event's automatic discount. ``repeat``: THRESHOLD takes ``amount_off`` for every
    full ``threshold`` (每满), else once (满)."""

    __tablename__ = "promotions"

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id", index=False)
    event_id: str = ref_field("events.id")
    name: str = Field(max_length=100)
    kind: PromotionKind = enum_field(PromotionKind.THRESHOLD)
    threshold_minor: int = Field(default=0)
    amount_off_minor: int | None = None
    repeat: bool = Field(default=False)
    percent_off_bp: int | None = None
    max_discount_minor: int | None = None
    currency: str = Field(default="CNY", max_length=3)
    valid_from: datetime | None = time_field()
    valid_to: datetime | None = time_field()
    status: PromotionStatus = enum_field(PromotionStatus.ACTIVE)
    created_by: str | None = Field(default=None, max_length=26)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)
