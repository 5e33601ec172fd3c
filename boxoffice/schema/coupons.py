"""GraphQL types of coupons, the coupons people hold, promotions and batch jobs."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from boxoffice.models import batch_jobs as bj
from boxoffice.models import coupons as m
from boxoffice.schema.context import Info
from boxoffice.schema.money import Money
from boxoffice.schema.pagination import Connection
from boxoffice.services import batch_jobs
from boxoffice.services.user_coupons import OwnedCoupon

for _enum in (
    m.CouponKind,
    m.CouponScope,
    m.CouponStatus,
    m.UserCouponStatus,
    m.CouponSource,
    m.PromotionKind,
    m.PromotionStatus,
    bj.BatchJobKind,
    bj.BatchJobStatus,
    bj.BatchItemStatus,
):
    strawberry.enum(_enum)


def _percent(bp: int | None) -> Decimal | None:
    return None if bp is None else (Decimal(bp) / 100).quantize(Decimal("0.01"))


@strawberry.type(description="A coupon: what it takes off, where it applies, when, how many.")
class Coupon:
    id: strawberry.ID
    code: str | None = strawberry.field(
        description="Claim it with `claimCouponByCode`; shown to the coupon's managers only."
    )
    name: str
    description: str | None
    kind: m.CouponKind
    value: Decimal = strawberry.field(
        description="FIXED: the amount off; PERCENT: the percentage off (15.00 = 15 %)."
    )
    amount_off: Money | None
    percent_off: Decimal | None
    max_discount: Money | None = strawberry.field(description="PERCENT: the most it takes off.")
    min_spend: Money = strawberry.field(
        description="What the tickets in scope must cost (after a stacking promotion)."
    )
    scope: m.CouponScope
    tenant_id: strawberry.ID | None
    event_id: strawberry.ID | None
    tier_id: strawberry.ID | None
    valid_from: datetime | None
    valid_to: datetime | None
    total_quantity: int
    claimed: int
    remaining: int
    per_user_limit: int
    stackable: bool = strawberry.field(
        description="Combines with the event's promotion; if not, using it drops the promotion."
    )
    status: m.CouponStatus
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, coupon: m.Coupon, *, show_code: bool) -> Coupon:
        c = coupon.currency
        off = coupon.amount_off_minor
        return cls(
            id=strawberry.ID(coupon.id),
            code=coupon.code if show_code else None,
            name=coupon.name,
            description=coupon.description,
            kind=coupon.kind,
            value=(
                Money.from_minor(off, c).amount
                if off is not None
                else _percent(coupon.percent_off_bp) or Decimal(0)
            ),
            amount_off=Money.optional(off, c),
            percent_off=_percent(coupon.percent_off_bp),
            max_discount=Money.optional(coupon.max_discount_minor, c),
            min_spend=Money.from_minor(coupon.min_spend_minor, c),
            scope=coupon.scope,
            tenant_id=strawberry.ID(coupon.tenant_id) if coupon.tenant_id else None,
            event_id=strawberry.ID(coupon.event_id) if coupon.event_id else None,
            tier_id=strawberry.ID(coupon.tier_id) if coupon.tier_id else None,
            valid_from=coupon.valid_from,
            valid_to=coupon.valid_to,
            total_quantity=coupon.total_quantity,
            claimed=coupon.claimed,
            remaining=max(0, coupon.total_quantity - coupon.claimed),
            per_user_limit=coupon.per_user_limit,
            stackable=coupon.stackable,
            status=coupon.status,
            created_at=coupon.created_at,
            updated_at=coupon.updated_at,
        )


@strawberry.type(name="CouponConnection")
class CouponConnection(Connection[Coupon]):
    pass


@strawberry.type(description="A coupon someone holds.")
class UserCoupon:
    id: strawberry.ID
    status: m.UserCouponStatus
    source: m.CouponSource
    coupon: Coupon
    claimed_at: datetime
    used_at: datetime | None
    order_id: strawberry.ID | None = strawberry.field(description="The order it is locked to.")
    valid_from: datetime | None
    valid_to: datetime | None
    discount: Money | None = strawberry.field(
        description="availableCoupons: what it takes off that hold, exactly as checkout would."
    )
    promotion_discount: Money | None = strawberry.field(
        description="availableCoupons: the promotion the order keeps beside it."
    )
    order_total: Money | None = strawberry.field(
        description="availableCoupons: the order's total with it."
    )

    @classmethod
    def from_owned(cls, owned: OwnedCoupon) -> UserCoupon:
        uc, coupon, c = owned.user_coupon, owned.coupon, owned.coupon.currency
        return cls(
            id=strawberry.ID(uc.id),
            status=owned.status,
            source=uc.source,
            coupon=Coupon.from_model(coupon, show_code=False),
            claimed_at=uc.claimed_at,
            used_at=uc.used_at,
            order_id=strawberry.ID(uc.order_id) if uc.order_id else None,
            valid_from=coupon.valid_from,
            valid_to=coupon.valid_to,
            discount=Money.optional(owned.discount_minor, c),
            promotion_discount=Money.optional(owned.promotion_discount_minor, c),
            order_total=Money.optional(owned.order_total_minor, c),
        )


@strawberry.type(description="One person of a batch job, once settled.")
class BatchJobResult:
    position: int = strawberry.field(description="Where the person was in the list (from 0).")
    user_id: strawberry.ID
    ok: bool
    status: bj.BatchItemStatus
    reason: str | None = strawberry.field(
        description="Why it failed: USER_NOT_FOUND, SOLD_OUT, ALREADY_CLAIMED, ENDED, PAUSED."
    )
    result_id: strawberry.ID | None = strawberry.field(description="The user coupon issued.")
    processed_at: datetime | None

    @classmethod
    def from_model(cls, item: bj.BatchJobItem) -> BatchJobResult:
        return cls(
            position=item.position,
            user_id=strawberry.ID(item.user_id),
            ok=item.status is bj.BatchItemStatus.SUCCEEDED,
            status=item.status,
            reason=item.reason,
            result_id=strawberry.ID(item.result_id) if item.result_id else None,
            processed_at=item.processed_at,
        )


@strawberry.type(description="A background job over many people, with its progress.")
class BatchJob:
    id: strawberry.ID
    kind: bj.BatchJobKind
    status: bj.BatchJobStatus
    coupon_id: strawberry.ID | None
    total: int
    succeeded: int
    failed: int
    processed: int
    progress: float = strawberry.field(description="processed / total, from 0 to 1.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_model(cls, job: bj.BatchJob) -> BatchJob:
        processed = job.succeeded + job.failed
        return cls(
            id=strawberry.ID(job.id),
            kind=job.kind,
            status=job.status,
            coupon_id=(
                strawberry.ID(job.subject_id) if job.kind is bj.BatchJobKind.COUPON_ISSUE else None
            ),
            total=job.total,
            succeeded=job.succeeded,
            failed=job.failed,
            processed=processed,
            progress=processed / job.total if job.total else 1.0,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )

    @strawberry.field(
        description="Settled people in list order, after position `after` (at most 1000)."
    )
    async def results(
        self,
        info: Info,
        first: int | None = 100,
        after: int | None = None,
        failed_only: bool = False,
    ) -> list[BatchJobResult]:
        items = await batch_jobs.job_items(
            db=info.context.rt.db,
            job_id=self.id,
            first=first,
            after=after,
            failed_only=failed_only,
            settled_only=True,
        )
        return [BatchJobResult.from_model(item) for item in items]


@strawberry.type(description="An event's automatic discount (满减 or a percentage).")
class Promotion:
    id: strawberry.ID
    event_id: strawberry.ID
    tenant_id: strawberry.ID
    name: str
    kind: m.PromotionKind
    threshold: Money = strawberry.field(description="The subtotal it starts from.")
    amount_off: Money | None = strawberry.field(description="THRESHOLD: what it takes off.")
    repeat: bool = strawberry.field(
        description="THRESHOLD: for every full threshold (每满), not once."
    )
    percent_off: Decimal | None
    max_discount: Money | None
    valid_from: datetime | None
    valid_to: datetime | None
    status: m.PromotionStatus
    created_at: datetime

    @classmethod
    def from_model(cls, promotion: m.Promotion) -> Promotion:
        c = promotion.currency
        return cls(
            id=strawberry.ID(promotion.id),
            event_id=strawberry.ID(promotion.event_id),
            tenant_id=strawberry.ID(promotion.tenant_id),
            name=promotion.name,
            kind=promotion.kind,
            threshold=Money.from_minor(promotion.threshold_minor, c),
            amount_off=Money.optional(promotion.amount_off_minor, c),
            repeat=promotion.repeat,
            percent_off=_percent(promotion.percent_off_bp),
            max_discount=Money.optional(promotion.max_discount_minor, c),
            valid_from=promotion.valid_from,
            valid_to=promotion.valid_to,
            status=promotion.status,
            created_at=promotion.created_at,
        )


@strawberry.input
class CreateCouponInput:
    name: str
    kind: m.CouponKind
    value: Decimal = strawberry.field(
        description="FIXED: the amount off; PERCENT: the percentage off (at most 100)."
    )
    total_quantity: int
    per_user_limit: int | None = strawberry.field(default=None, description="Default 1.")
    min_spend: Decimal | None = None
    max_discount: Decimal | None = strawberry.field(
        default=None, description="PERCENT only: the most it takes off."
    )
    tenant_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Omitted by an operator (and no event or tier): a platform coupon.",
    )
    event_id: strawberry.ID | None = None
    tier_id: strawberry.ID | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    stackable: bool | None = strawberry.field(
        default=True, description="Combines with the event's promotion (default true)."
    )
    code: str | None = strawberry.field(
        default=None, description="Your own code (4-32 letters, digits, dashes); else generated."
    )
    description: str | None = None


@strawberry.input
class CreatePromotionInput:
    event_id: strawberry.ID
    name: str
    kind: m.PromotionKind
    threshold: Decimal | None = strawberry.field(
        default=None, description="THRESHOLD: required; PERCENT: the optional minimum subtotal."
    )
    amount_off: Decimal | None = None
    repeat: bool | None = False
    percent_off: Decimal | None = None
    max_discount: Decimal | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
