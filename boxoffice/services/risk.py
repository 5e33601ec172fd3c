"""The waiting room's risk score: a small, explainable number from 0 to 100.

Signals (kept in the short-lived store and the rate limiter, nothing durable):

==================  ==========================================================  ============
signal              meaning                                                     points
==================  ==========================================================  ============
device reuse        distinct accounts that joined a queue from this device id   20 per extra
                    in roughly the last hour (this one included)                account, ≤ 80
join rate           this user's join attempts in the current minute (the rate   5 per attempt
                    limiter's count), beyond the first ``FREE_ATTEMPTS``        beyond, ≤ 30
no device id        the client sent none (honest apps always do)                10
==================  ==========================================================  ============

The rule: a score of ``REFUSE_AT`` (70) or more is refused (FORBIDDEN); from ``BACK_AT`` (40)
the entry goes to the back of the line (drawn after every normal pre-queue entry; after the
sale opens every arrival is at the back anyway); below that it joins normally. The score is
capped at 100. So one device shared by two accounts (a couple) passes, a third or fourth
account on it goes to the back, a fifth is refused, and so is a fourth that also hammers the
button. IP addresses are not
scored (carrier NAT puts thousands of honest users behind one); they are only rate limited and
blacklisted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from boxoffice.backends.codes import CodeStore

BACK_AT = 40
REFUSE_AT = 70
DEVICE_WINDOW_SECONDS = 3600.0
FREE_ATTEMPTS = 3
POINTS_PER_EXTRA_ACCOUNT, MAX_DEVICE_POINTS = 20, 80
POINTS_PER_ATTEMPT, MAX_RATE_POINTS = 5, 30
NO_DEVICE_POINTS = 10


class RiskVerdict(StrEnum):
    ALLOW = "ALLOW"
    BACK_OF_LINE = "BACK_OF_LINE"
    REFUSE = "REFUSE"


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    score: int
    verdict: RiskVerdict
    signals: dict[str, int] = field(default_factory=dict)


def verdict_for(score: int) -> RiskVerdict:
    if score >= REFUSE_AT:
        return RiskVerdict.REFUSE
    if score >= BACK_AT:
        return RiskVerdict.BACK_OF_LINE
    return RiskVerdict.ALLOW


def score(*, device_accounts: int | None, join_attempts: int) -> int:
    """The score of the signals; ``device_accounts`` is None when there is no device id."""
    points = min(MAX_RATE_POINTS, POINTS_PER_ATTEMPT * max(0, join_attempts - FREE_ATTEMPTS))
    if device_accounts is None:
        points += NO_DEVICE_POINTS
    else:
        points += min(MAX_DEVICE_POINTS, POINTS_PER_EXTRA_ACCOUNT * max(0, device_accounts - 1))
    return min(100, points)


async def device_accounts(codes: CodeStore, *, device_id: str, user_id: str) -> int:
    """Record that ``user_id`` used ``device_id`` and return how many distinct accounts did in
    the window (a fixed window started by the device's first account)."""
    counter = f"risk:dev:{device_id}:n"
    if await codes.put_if_absent(
        f"risk:dev:{device_id}:u:{user_id}", "1", ttl_seconds=DEVICE_WINDOW_SECONDS
    ):
        return await codes.incr(counter, ttl_seconds=DEVICE_WINDOW_SECONDS)
    return int(await codes.get(counter) or 1)


async def assess(
    *, codes: CodeStore, user_id: str, device_id: str | None, join_attempts: int
) -> RiskAssessment:
    """Record this join's signals and score them. ``join_attempts`` is the user's count in the
    current rate-limit window, this attempt included."""
    accounts = (
        await device_accounts(codes, device_id=device_id, user_id=user_id) if device_id else None
    )
    total = score(device_accounts=accounts, join_attempts=join_attempts)
    signals = {"joinAttempts": join_attempts}
    if accounts is not None:
        signals["deviceAccounts"] = accounts
    return RiskAssessment(total, verdict_for(total), signals)
