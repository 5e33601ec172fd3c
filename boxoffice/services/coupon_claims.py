"""Taking a unit of a coupon: claimed by a person (by id or code), or issued by staff.

``grant`` is atomic under any concurrency, in one process or many, on SQLite and
PostgreSQL alike, with no lock service: inside the caller's transaction it

1. makes sure the person's counter row exists (``INSERT ... ON CONFLICT DO NOTHING``),
2. takes one of the person's units: ``UPDATE coupon_holders SET claimed = claimed + 1
   WHERE claimed < per_user_limit`` (no row changed: ALREADY_CLAIMED),
3. inserts the ``UserCoupon`` numbered by that counter (``(coupon_id, user_id, seq)`` is
   unique as a second guard),
4. takes one unit of stock last, so the coupon's row is locked for the shortest time:
   ``UPDATE coupons SET claimed = claimed + 1 WHERE claimed < total_quantity AND
   status = 'ACTIVE'`` (no row changed: SOLD_OUT, or PAUSED/ENDED if that changed).

PostgreSQL re-checks each ``WHERE`` against the latest committed row after waiting for a
concurrent writer's lock, and SQLite runs one writer at a time, so the counters can never
pass their limits. Any refusal raises ``CouponUnavailable`` and the caller's transaction (or
savepoint) rolls every step back. A claim's transaction runs again after a deadlock (its
steps re-check every limit, and nothing happened outside the database).

Refusal reasons: ENDED (ended, or past ``validTo``), PAUSED, NOT_STARTED (before
``validFrom``; staff may issue early), SOLD_OUT, ALREADY_CLAIMED (the per-user limit).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import CouponUnavailable, NotFound
from boxoffice.models.coupons import (
    Coupon,
    CouponHolder,
    CouponSource,
    CouponStatus,
    UserCoupon,
)
from boxoffice.services.coupons import normalize_code
from boxoffice.services.user_coupons import OwnedCoupon, owned
from boxoffice.services.viewer import Viewer

_MESSAGES = {
    "ENDED": "This coupon has ended.",
    "PAUSED": "This coupon is paused.",
    "NOT_STARTED": "This coupon cannot be claimed yet.",
    "SOLD_OUT": "This coupon is all gone.",
    "ALREADY_CLAIMED": "You already hold as many of this coupon as one person may.",
}


def unavailable(reason: str) -> CouponUnavailable:
    return CouponUnavailable(_MESSAGES[reason], reason=reason)


def refusal(coupon: Coupon, now: datetime, *, early: bool = False) -> str | None:
    """Why ``coupon`` cannot be taken now (None: it can, as far as its row says).
    ``early``: before ``validFrom`` is fine (staff issuing)."""
    if coupon.status is CouponStatus.ENDED or (
        coupon.valid_to is not None and coupon.valid_to <= now
    ):
        return "ENDED"
    if coupon.status is CouponStatus.PAUSED:
        return "PAUSED"
    if not early and coupon.valid_from is not None and coupon.valid_from > now:
        return "NOT_STARTED"
    if coupon.claimed >= coupon.total_quantity:
        return "SOLD_OUT"
    return None


async def _ensure_holder(
    session: AsyncSession, coupon_id: str, user_id: str, now: datetime
) -> None:
    dialect = (await session.connection()).dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.exec(
        insert(CouponHolder)
        .values(coupon_id=coupon_id, user_id=user_id, claimed=0, updated_at=now)
        .on_conflict_do_nothing(index_elements=["coupon_id", "user_id"])
    )


async def _at_limit(session: AsyncSession, coupon: Coupon, user_id: str) -> bool:
    held = await session.exec(
        select(CouponHolder.claimed).where(
            CouponHolder.coupon_id == coupon.id, CouponHolder.user_id == user_id
        )
    )
    return (held.first() or 0) >= coupon.per_user_limit


async def grant(
    session: AsyncSession,
    coupon: Coupon,
    user_id: str,
    *,
    now: datetime,
    source: CouponSource = CouponSource.CLAIM,
    batch_job_id: str | None = None,
) -> UserCoupon:
    """Give ``user_id`` one unit of ``coupon`` inside ``session``'s transaction (see the
    module docstring). Raises ``CouponUnavailable`` with the reason."""
    early = source is CouponSource.ISSUE
    reason = refusal(coupon, now, early=early)
    if reason == "SOLD_OUT" and await _at_limit(session, coupon, user_id):
        reason = "ALREADY_CLAIMED"  # the more useful answer to someone who has theirs
    if reason is not None:
        raise unavailable(reason)
    await _ensure_holder(session, coupon.id, user_id, now)
    mine = await session.exec(
        update(CouponHolder)
        .where(
            col(CouponHolder.coupon_id) == coupon.id,
            col(CouponHolder.user_id) == user_id,
            col(CouponHolder.claimed) < coupon.per_user_limit,
        )
        .values(claimed=col(CouponHolder.claimed) + 1, updated_at=now)
    )
    if mine.rowcount != 1:
        raise unavailable("ALREADY_CLAIMED")
    seq = (
        await session.exec(
            select(CouponHolder.claimed).where(
                CouponHolder.coupon_id == coupon.id, CouponHolder.user_id == user_id
            )
        )
    ).one()
    user_coupon = UserCoupon(
        coupon_id=coupon.id,
        user_id=user_id,
        seq=seq,
        source=source,
        batch_job_id=batch_job_id,
        claimed_at=now,
    )
    session.add(user_coupon)
    await session.flush()
    stock = await session.exec(
        update(Coupon)
        .where(
            col(Coupon.id) == coupon.id,
            col(Coupon.claimed) < col(Coupon.total_quantity),
            col(Coupon.status) == CouponStatus.ACTIVE,
        )
        .values(claimed=col(Coupon.claimed) + 1, updated_at=now)
    )
    current = await session.get(Coupon, coupon.id, populate_existing=True)
    assert current is not None
    if stock.rowcount != 1:
        raise unavailable(refusal(current, now, early=early) or "SOLD_OUT")
    return user_coupon


async def _claim(
    db: Database, viewer: Viewer, *, coupon_id: str | None, code: str | None
) -> OwnedCoupon:
    user_id = viewer.require_user()
    now = utcnow()

    async def claim(session: AsyncSession) -> tuple[UserCoupon, Coupon]:
        if code is not None:
            query = select(Coupon).where(Coupon.code == normalize_code(code))
            coupon = (await session.exec(query)).first()
        else:
            coupon = await session.get(Coupon, coupon_id)
        if coupon is None:
            raise NotFound("No such coupon.", field="code" if code is not None else "couponId")
        return await grant(session, coupon, user_id, now=now), coupon

    user_coupon, coupon = await db.write_retrying(claim, what="claim a coupon")
    return owned(user_coupon, coupon, now)


async def claim_coupon(*, db: Database, viewer: Viewer, coupon_id: str) -> OwnedCoupon:
    """The caller takes one unit of the coupon. Raises NOT_FOUND, COUPON_UNAVAILABLE
    (``reason``: SOLD_OUT, ALREADY_CLAIMED, ENDED, NOT_STARTED, PAUSED)."""
    return await _claim(db, viewer, coupon_id=coupon_id, code=None)


async def claim_coupon_by_code(*, db: Database, viewer: Viewer, code: str) -> OwnedCoupon:
    """``claim_coupon`` for the coupon with this code (any letter case)."""
    return await _claim(db, viewer, coupon_id=None, code=code)
