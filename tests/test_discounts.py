"""The arithmetic of discounts: exact minor units, half-up percentages, caps, never more than
the amount; promotions once or for every full threshold."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxoffice.models.coupons import Coupon, CouponKind, Promotion, PromotionKind
from boxoffice.services.discounts import coupon_discount, percent_of, promotion_discount


def coupon(
    kind: CouponKind = CouponKind.FIXED,
    *,
    amount: int | None = None,
    bp: int | None = None,
    cap: int | None = None,
) -> Coupon:
    return Coupon(
        code="X",
        name="c",
        kind=kind,
        amount_off_minor=amount,
        percent_off_bp=bp,
        max_discount_minor=cap,
        total_quantity=1,
    )


def promotion(
    kind: PromotionKind = PromotionKind.THRESHOLD,
    *,
    threshold: int = 0,
    amount: int | None = None,
    repeat: bool = False,
    bp: int | None = None,
    cap: int | None = None,
) -> Promotion:
    return Promotion(
        tenant_id="t",
        event_id="e",
        name="p",
        kind=kind,
        threshold_minor=threshold,
        amount_off_minor=amount,
        repeat=repeat,
        percent_off_bp=bp,
        max_discount_minor=cap,
    )


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [
        (33333, 1500, 5000),  # 15 % of 333.33 = 49.9995 → 50.00 (half-up at the fen)
        (10001, 1250, 1250),  # 12.5 % of 100.01 = 12.50125 → 12.50
        (99, 5000, 50),  # 49.5 fen → 50 fen (half-up, not banker's)
        (101, 5000, 51),  # 50.5 → 51
        (18000, 10000, 18000),  # 100 %
        (0, 1500, 0),
    ],
)
def test_percentages_round_half_up_to_the_fen(amount: int, bp: int, expected: int):
    assert percent_of(amount, bp) == expected


def test_percent_coupon_is_capped_by_its_maximum():
    assert coupon_discount(coupon(CouponKind.PERCENT, bp=2000, cap=5000), 100000) == 5000
    assert coupon_discount(coupon(CouponKind.PERCENT, bp=2000, cap=5000), 10000) == 2000


def test_fixed_coupon_never_takes_more_than_its_base():
    assert coupon_discount(coupon(amount=5000), 3000) == 3000
    assert coupon_discount(coupon(amount=5000), 18000) == 5000


def test_threshold_promotion_once_or_for_every_full_threshold():
    once = promotion(threshold=100000, amount=20000)
    every = promotion(threshold=100000, amount=20000, repeat=True)
    assert promotion_discount(once, 99999) == 0
    assert promotion_discount(once, 250000) == 20000
    assert promotion_discount(every, 250000) == 40000  # 200 off every 1000 of 2500
    assert (
        promotion_discount(
            promotion(threshold=100000, amount=20000, repeat=True, cap=30000), 500000
        )
        == 30000
    )


def test_percent_promotion_from_its_threshold():
    tenth = promotion(PromotionKind.PERCENT, threshold=50000, bp=1000)
    assert promotion_discount(tenth, 49999) == 0
    assert promotion_discount(tenth, 76543) == 7654  # 7654.3 → 7654


@given(
    base=st.integers(min_value=0, max_value=10**9),
    bp=st.integers(min_value=1, max_value=10_000),
    cap=st.one_of(st.none(), st.integers(min_value=1, max_value=10**9)),
)
def test_a_percent_discount_is_exact_and_bounded(base: int, bp: int, cap: int | None):
    # the discount is the exactly rounded percentage, within the cap and the base
    found = coupon_discount(coupon(CouponKind.PERCENT, bp=bp, cap=cap), base)
    exact = base * bp / 10_000
    assert 0 <= found <= base
    assert cap is None or found <= cap
    if cap is None or cap >= exact + 1:
        assert abs(found - exact) <= 0.5
        # half-up: a remainder of exactly one half rounds away from zero
        if (base * bp) % 10_000 == 5_000:
            assert found == (base * bp + 5_000) // 10_000
