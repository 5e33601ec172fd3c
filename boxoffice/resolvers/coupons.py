"""Root fields for coupons, promotions and coupon-issuing jobs."""

from __future__ import annotations

import strawberry

from boxoffice.models import coupons as models
from boxoffice.models.coupons import CouponStatus, UserCouponStatus
from boxoffice.schema.context import Info
from boxoffice.schema.coupons import (
    BatchJob,
    Coupon,
    CouponConnection,
    CreateCouponInput,
    CreatePromotionInput,
    Promotion,
    UserCoupon,
)
from boxoffice.services import (
    batch_jobs,
    coupon_claims,
    coupon_issuing,
    coupons,
    promotions,
    user_coupons,
)


def _managed(coupon: models.Coupon) -> Coupon:
    return Coupon.from_model(coupon, show_code=True)


async def _set_status(info: Info, coupon_id: str, status: CouponStatus) -> Coupon:
    changed = await coupons.set_status(
        db=info.context.rt.db,
        viewer=await info.context.viewer(),
        coupon_id=coupon_id,
        status=status,
    )
    return _managed(changed)


@strawberry.type
class CouponQuery:
    @strawberry.field(
        description="Staff: ORGANIZER, the tenant's coupons (their only tenant by default); "
        "OPERATOR, a tenant's, or the platform's without `tenantId`. Newest first."
    )
    async def coupons(
        self,
        info: Info,
        tenant_id: strawberry.ID | None = None,
        status: CouponStatus | None = None,
        event_id: strawberry.ID | None = None,
        first: int | None = 20,
        after: str | None = None,
    ) -> CouponConnection:
        db = info.context.rt.db
        viewer = await info.context.viewer()
        page = await coupons.list_coupons(
            db=db,
            viewer=viewer,
            tenant_id=tenant_id,
            status=status,
            event_id=event_id,
            first=first,
            after=after,
        )
        return CouponConnection.of(
            page,
            _managed,
            after=after,
            total=lambda: coupons.count_coupons(
                db=db, viewer=viewer, tenant_id=tenant_id, status=status, event_id=event_id
            ),
        )

    @strawberry.field(description="A coupon's terms (its code only for its managers).")
    async def coupon(self, info: Info, id: strawberry.ID) -> Coupon | None:
        found = await coupons.get_coupon(db=info.context.rt.db, coupon_id=id)
        if found is None:
            return None
        viewer = await info.context.viewer()
        return Coupon.from_model(found, show_code=coupons.can_manage(viewer, found))

    @strawberry.field(description="Your coupons (of one status, or all), newest first.")
    async def my_coupons(
        self, info: Info, status: UserCouponStatus | None = None, first: int | None = None
    ) -> list[UserCoupon]:
        found = await user_coupons.my_coupons(
            db=info.context.rt.db, viewer=await info.context.viewer(), status=status, first=first
        )
        return [UserCoupon.from_owned(o) for o in found]

    @strawberry.field(
        description="Your coupons checkout would accept for this hold, each with its discount "
        "and the order's total, best first."
    )
    async def available_coupons(self, info: Info, hold_token: str) -> list[UserCoupon]:
        found = await user_coupons.available_coupons(
            deps=info.context.rt.order_deps,
            viewer=await info.context.viewer(),
            hold_token=hold_token,
        )
        return [UserCoupon.from_owned(o) for o in found]

    @strawberry.field(description="A batch job's progress and results (staff).")
    async def batch_job(self, info: Info, id: strawberry.ID) -> BatchJob:
        job = await batch_jobs.get_batch_job(
            db=info.context.rt.db, viewer=await info.context.viewer(), job_id=id
        )
        return BatchJob.from_model(job)

    @strawberry.field(
        description="An event's promotions: the running ones (its staff see all of them)."
    )
    async def promotions(self, info: Info, event_id: strawberry.ID) -> list[Promotion]:
        found = await promotions.list_promotions(
            db=info.context.rt.db, viewer=await info.context.viewer(), event_id=event_id
        )
        return [Promotion.from_model(p) for p in found]


@strawberry.type
class CouponMutation:
    @strawberry.mutation(
        description="OPERATOR: platform coupons (or any tenant's); ORGANIZER: the tenant's, "
        "scoped to the tenant, an event or a tier."
    )
    async def create_coupon(self, info: Info, input: CreateCouponInput) -> Coupon:
        created = await coupons.create_coupon(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            name=input.name,
            kind=input.kind,
            value=input.value,
            total_quantity=input.total_quantity,
            per_user_limit=input.per_user_limit,
            min_spend=input.min_spend,
            max_discount=input.max_discount,
            tenant_id=input.tenant_id,
            event_id=input.event_id,
            tier_id=input.tier_id,
            valid_from=input.valid_from,
            valid_to=input.valid_to,
            stackable=input.stackable is not False,
            code=input.code,
            description=input.description,
        )
        return Coupon.from_model(created, show_code=True)

    @strawberry.mutation(description="Stop claims and issues for now (held coupons stay usable).")
    async def pause_coupon(self, info: Info, id: strawberry.ID) -> Coupon:
        return await _set_status(info, id, CouponStatus.PAUSED)

    @strawberry.mutation(description="Let a paused coupon be claimed again.")
    async def resume_coupon(self, info: Info, id: strawberry.ID) -> Coupon:
        return await _set_status(info, id, CouponStatus.ACTIVE)

    @strawberry.mutation(description="End a coupon for good: no claims; unused ones expire.")
    async def end_coupon(self, info: Info, id: strawberry.ID) -> Coupon:
        return await _set_status(info, id, CouponStatus.ENDED)

    @strawberry.mutation(
        description="Take one of this coupon. COUPON_UNAVAILABLE reasons: SOLD_OUT, "
        "ALREADY_CLAIMED, ENDED, NOT_STARTED, PAUSED."
    )
    async def claim_coupon(self, info: Info, coupon_id: strawberry.ID) -> UserCoupon:
        found = await coupon_claims.claim_coupon(
            db=info.context.rt.db, viewer=await info.context.viewer(), coupon_id=coupon_id
        )
        return UserCoupon.from_owned(found)

    @strawberry.mutation(description="`claimCoupon` by the coupon's code (any letter case).")
    async def claim_coupon_by_code(self, info: Info, code: str) -> UserCoupon:
        found = await coupon_claims.claim_coupon_by_code(
            db=info.context.rt.db, viewer=await info.context.viewer(), code=code
        )
        return UserCoupon.from_owned(found)

    @strawberry.mutation(
        description="Issue the coupon to these users in the background (at most 10,000; "
        "duplicates count once); follow it with `batchJob`."
    )
    async def issue_coupons(
        self, info: Info, coupon_id: strawberry.ID, user_ids: list[strawberry.ID]
    ) -> BatchJob:
        job = await coupon_issuing.issue_coupons(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            coupon_id=coupon_id,
            user_ids=user_ids,
        )
        return BatchJob.from_model(job)

    @strawberry.mutation(description="ORGANIZER of the event's tenant: an automatic discount.")
    async def create_promotion(self, info: Info, input: CreatePromotionInput) -> Promotion:
        created = await promotions.create_promotion(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            event_id=input.event_id,
            name=input.name,
            kind=input.kind,
            threshold=input.threshold,
            amount_off=input.amount_off,
            repeat=bool(input.repeat),
            percent_off=input.percent_off,
            max_discount=input.max_discount,
            valid_from=input.valid_from,
            valid_to=input.valid_to,
        )
        return Promotion.from_model(created)

    @strawberry.mutation(description="Stop a promotion for good.")
    async def end_promotion(self, info: Info, id: strawberry.ID) -> Promotion:
        ended = await promotions.end_promotion(
            db=info.context.rt.db, viewer=await info.context.viewer(), promotion_id=id
        )
        return Promotion.from_model(ended)
