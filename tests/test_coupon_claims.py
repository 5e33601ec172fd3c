"""Claiming coupons: never more claims than the quantity, never more than the per-user limit,
under real concurrency in one process and across two; each refusal names its reason."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlmodel import col, func, select, update

from boxoffice.clock import utcnow
from boxoffice.errors import CouponUnavailable, NotFound, Unauthenticated
from boxoffice.models.coupons import Coupon, CouponHolder, CouponStatus, UserCoupon
from boxoffice.runtime import Runtime
from boxoffice.services import coupons
from boxoffice.services.coupon_claims import claim_coupon, claim_coupon_by_code
from boxoffice.services.viewer import ANONYMOUS
from tests.catalog_factories import OPERATOR
from tests.coupon_factories import claimed, customer, make_coupon, make_customers
from tests.helpers import make_user

ROOT = Path(__file__).resolve().parent.parent


async def stock(rt: Runtime, coupon_id: str) -> tuple[int, int, int]:
    """(the coupon's claimed counter, user coupons, distinct holders)."""
    async with rt.db.read() as session:
        coupon = await session.get(Coupon, coupon_id)
        rows = (
            await session.exec(select(UserCoupon).where(UserCoupon.coupon_id == coupon_id))
        ).all()
    assert coupon is not None
    return coupon.claimed, len(rows), len({r.user_id for r in rows})


async def reason_of(call: object) -> str:
    with pytest.raises(CouponUnavailable) as refused:
        await call  # type: ignore[misc]
    return str(refused.value.extensions()["reason"])


async def test_300_people_claim_100_coupons_at_once_and_exactly_100_win(rt: Runtime):
    # given a coupon of 100 and 300 customers
    coupon = await make_coupon(rt, total_quantity=100)
    people = await make_customers(rt, 300)

    async def attempt(user_id: str) -> str:
        try:
            await claim_coupon(db=rt.db, viewer=customer(user_id), coupon_id=coupon.id)
        except CouponUnavailable as exc:
            return str(exc.extensions()["reason"])
        return "WON"

    # when they all claim at once
    outcomes = Counter(await asyncio.gather(*(attempt(u.id) for u in people)))
    # then exactly 100 win, the others hear SOLD_OUT, and the counters agree with the rows
    assert outcomes == {"WON": 100, "SOLD_OUT": 200}
    assert await stock(rt, coupon.id) == (100, 100, 100)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["pg_redis"], indirect=True)
async def test_two_processes_race_for_100_coupons_and_exactly_100_win(rt: Runtime):
    # given a coupon of 100 and two processes of 150 claimants each on one PostgreSQL
    coupon = await make_coupon(rt, total_quantity=100)
    people = [u.id for u in await make_customers(rt, 300)]
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.coupon_claimer",
            rt.settings.database_url,
            coupon.id,
            *half,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        for half in (people[:150], people[150:])
    ]
    try:
        async with asyncio.timeout(60):
            for worker in workers:
                assert worker.stdout is not None
                assert (await worker.stdout.readline()).strip() == b"ready"
            # when both start claiming together
            for worker in workers:
                assert worker.stdin is not None
                worker.stdin.write(b"go\n")
                await worker.stdin.drain()
            reports = [orjson.loads((await w.communicate())[0]) for w in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    # then exactly 100 claims won across both, every loser heard SOLD_OUT
    assert all(w.returncode == 0 for w in workers)
    assert sum(r["won"] for r in reports) == 100
    assert sum(r["reasons"].get("SOLD_OUT", 0) for r in reports) == 200
    assert await stock(rt, coupon.id) == (100, 100, 100)


async def test_per_user_limit_holds_under_concurrency(rt: Runtime):
    # given a coupon of which one person may hold two
    coupon = await make_coupon(rt, total_quantity=50, per_user_limit=2)
    user = await make_user(rt, "eager@example.com")
    # when that person claims 20 times at once
    results = await asyncio.gather(
        *(claim_coupon(db=rt.db, viewer=customer(user), coupon_id=coupon.id) for _ in range(20)),
        return_exceptions=True,
    )
    # then two claims win (numbered 1 and 2), the rest are ALREADY_CLAIMED
    won = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, CouponUnavailable)]
    assert len(won) == 2
    assert len(refused) == 18
    assert {r.extensions()["reason"] for r in refused} == {"ALREADY_CLAIMED"}
    assert sorted(o.user_coupon.seq for o in won) == [1, 2]
    assert await stock(rt, coupon.id) == (2, 2, 1)
    async with rt.db.read() as session:
        holder = await session.get(CouponHolder, (coupon.id, user.id))
    assert holder is not None
    assert holder.claimed == 2


async def test_many_people_with_limits_racing_for_little_stock(rt: Runtime):
    # given 30 units, 3 per person, and 20 people each claiming 4 times at once
    coupon = await make_coupon(rt, total_quantity=30, per_user_limit=3)
    people = await make_customers(rt, 20, prefix="greedy")
    results = await asyncio.gather(
        *(claimed(rt, person, coupon) for person in people for _ in range(4)),
        return_exceptions=True,
    )
    # then the stock is exactly used up and nobody holds more than three
    assert all(
        not isinstance(r, BaseException) or isinstance(r, CouponUnavailable) for r in results
    )
    async with rt.db.read() as session:
        per_person = (
            await session.exec(
                select(UserCoupon.user_id, func.count())
                .where(UserCoupon.coupon_id == coupon.id)
                .group_by(col(UserCoupon.user_id))
            )
        ).all()
    assert sum(n for _, n in per_person) == 30
    assert max(n for _, n in per_person) <= 3
    assert (await stock(rt, coupon.id))[0] == 30


async def test_sold_out(rt: Runtime):
    coupon = await make_coupon(rt, total_quantity=1)
    first, second = await make_customers(rt, 2)
    await claimed(rt, first, coupon)
    assert await reason_of(claimed(rt, second, coupon)) == "SOLD_OUT"
    # while the one who has it hears that they have it
    assert await reason_of(claimed(rt, first, coupon)) == "ALREADY_CLAIMED"


async def test_already_claimed(rt: Runtime):
    coupon = await make_coupon(rt, total_quantity=10)
    user = await make_user(rt, "twice@example.com")
    await claimed(rt, user, coupon)
    assert await reason_of(claimed(rt, user, coupon)) == "ALREADY_CLAIMED"
    # and a refused claim leaves no trace
    assert await stock(rt, coupon.id) == (1, 1, 1)


async def test_ended_by_staff_and_by_its_window(rt: Runtime):
    # given an ended coupon, and one whose window has closed
    ended = await make_coupon(rt, name="Ended")
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=ended.id, status=CouponStatus.ENDED
    )
    lapsed = await make_coupon(rt, name="Lapsed", valid_to=utcnow() + timedelta(days=1))
    async with rt.db.write() as session:
        await session.exec(
            update(Coupon)
            .where(col(Coupon.id) == lapsed.id)
            .values(valid_to=utcnow() - timedelta(seconds=1))
        )
    user = await make_user(rt, "late@example.com")
    # then both answer ENDED
    assert await reason_of(claimed(rt, user, ended)) == "ENDED"
    assert await reason_of(claimed(rt, user, lapsed)) == "ENDED"


async def test_not_started(rt: Runtime):
    coupon = await make_coupon(rt, valid_from=utcnow() + timedelta(hours=1))
    user = await make_user(rt, "early@example.com")
    assert await reason_of(claimed(rt, user, coupon)) == "NOT_STARTED"


async def test_paused_then_resumed(rt: Runtime):
    # given a paused coupon
    coupon = await make_coupon(rt)
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, status=CouponStatus.PAUSED
    )
    user = await make_user(rt, "patient@example.com")
    # then claims answer PAUSED until it is resumed
    assert await reason_of(claimed(rt, user, coupon)) == "PAUSED"
    await coupons.set_status(
        db=rt.db, viewer=OPERATOR, coupon_id=coupon.id, status=CouponStatus.ACTIVE
    )
    got = await claimed(rt, user, coupon)
    assert got.user_coupon.user_id == user.id


async def test_claim_by_code_in_any_letter_case(rt: Runtime):
    # given a coupon with a generated code
    coupon = await make_coupon(rt)
    user = await make_user(rt, "coder@example.com")
    # when claimed by its code typed in lower case with spaces
    got = await claim_coupon_by_code(
        db=rt.db, viewer=customer(user), code=f"  {coupon.code.lower()} "
    )
    # then it is that coupon
    assert got.coupon.id == coupon.id
    with pytest.raises(NotFound) as missing:
        await claim_coupon_by_code(db=rt.db, viewer=customer(user), code="NO-SUCH-CODE")
    assert missing.value.extensions()["field"] == "code"


async def test_unknown_coupon_and_anonymous(rt: Runtime):
    user = await make_user(rt, "who@example.com")
    with pytest.raises(NotFound):
        await claim_coupon(db=rt.db, viewer=customer(user), coupon_id="nope")
    coupon = await make_coupon(rt)
    with pytest.raises(Unauthenticated):
        await claim_coupon(db=rt.db, viewer=ANONYMOUS, coupon_id=coupon.id)
