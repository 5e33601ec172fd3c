"""The risk score and its rule: device reuse across accounts and join rate."""

from __future__ import annotations

import asyncio

import pytest

from boxoffice.runtime import Runtime
from boxoffice.services import risk
from boxoffice.services.risk import RiskVerdict


@pytest.mark.parametrize(
    ("device_accounts", "join_attempts", "verdict"),
    [
        (1, 1, RiskVerdict.ALLOW),  # one account, one try
        (2, 3, RiskVerdict.ALLOW),  # a couple sharing a phone
        (None, 3, RiskVerdict.ALLOW),  # no device id: 10 points
        (3, 1, RiskVerdict.BACK_OF_LINE),  # a third account on the device
        (4, 3, RiskVerdict.BACK_OF_LINE),
        (None, 9, RiskVerdict.BACK_OF_LINE),  # no device id and hammering
        (5, 1, RiskVerdict.REFUSE),  # a fifth account
        (4, 5, RiskVerdict.REFUSE),  # a fourth account that hammers
    ],
)
def test_the_rule(device_accounts: int | None, join_attempts: int, verdict: RiskVerdict):
    score = risk.score(device_accounts=device_accounts, join_attempts=join_attempts)
    assert risk.verdict_for(score) is verdict
    assert 0 <= score <= 100


def test_the_score_is_capped():
    assert risk.score(device_accounts=50, join_attempts=50) == 100


async def test_device_reuse_counts_distinct_accounts(rt: Runtime):
    codes = rt.backends.codes
    # given one account joining from a device many times (concurrently)
    counts = await asyncio.gather(
        *(risk.device_accounts(codes, device_id="dev", user_id="a") for _ in range(10))
    )
    # then it is one account
    assert set(counts) == {1}
    # when four more accounts use the same device, at once
    await asyncio.gather(*(risk.device_accounts(codes, device_id="dev", user_id=u) for u in "bcde"))
    # then the device has five accounts, and another device is unaffected
    assert await risk.device_accounts(codes, device_id="dev", user_id="a") == 5
    assert await risk.device_accounts(codes, device_id="other", user_id="a") == 1


async def test_assess_refuses_a_device_farm(rt: Runtime):
    codes = rt.backends.codes
    verdicts = []
    for user in ("u1", "u2", "u3", "u4", "u5"):
        assessment = await risk.assess(codes=codes, user_id=user, device_id="farm", join_attempts=1)
        verdicts.append(assessment.verdict)
    assert verdicts == [
        RiskVerdict.ALLOW,
        RiskVerdict.ALLOW,
        RiskVerdict.BACK_OF_LINE,
        RiskVerdict.BACK_OF_LINE,
        RiskVerdict.REFUSE,
    ]
    assert assessment.signals == {"joinAttempts": 1, "deviceAccounts": 5}
