"""Rate limits per GraphQL operation, per caller and optionally per object, in one table.

Every root mutation (and any query listed) counts one hit per call — so aliases and repeated
calls count each — under ``op:<operation>:<caller>[:<object>]``, where the caller is the
signed-in user or, when anonymous, the client IP, and the object is an argument named by
``per`` (e.g. the session a hold is for). Over the limit the call answers ``RATE_LIMITED``
with ``retryAfter``. Services keep their own, finer limits (failed logins per account, SMS per
phone, queue joins per user, device and IP); these are the outer fence.

``DEFAULT_LIMITS`` is the table; ``BOXOFFICE_OPERATION_LIMITS`` (a JSON object of
``{"operation": [limit, window_seconds]}``, or ``[limit, window_seconds, "per"]``) overrides
entries; the ``"*"`` entry applies to every mutation not named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from boxoffice.backends.rate_limits import RateDecision, RateLimiter
from boxoffice.errors import ConfigurationError, RateLimited

ANY_MUTATION = "*"


@dataclass(frozen=True, slots=True)
class OperationLimit:
    limit: int
    window_seconds: float
    per: str | None = None  # dotted path to an argument (Python names): the limited object


DEFAULT_LIMITS: Mapping[str, OperationLimit] = {
    ANY_MUTATION: OperationLimit(120, 60),
    "createHold": OperationLimit(10, 60, per="input.session_id"),  # per user per session
    "createOrder": OperationLimit(10, 60),
    "boxOfficeSale": OperationLimit(60, 60),
    "startPayment": OperationLimit(20, 60),
    "claimCoupon": OperationLimit(30, 60),
    "claimCouponByCode": OperationLimit(10, 60),  # guessing codes
    "register": OperationLimit(10, 3600),
    "changePassword": OperationLimit(10, 900),
    "resetPassword": OperationLimit(10, 900),
    "checkIn": OperationLimit(600, 60),  # a busy gate scans fast
    "uploadOfflineScans": OperationLimit(60, 60),
    "availableCoupons": OperationLimit(60, 60),
    "requestRefund": OperationLimit(10, 60),  # per user, across their orders
    "joinWaitlist": OperationLimit(20, 60),  # per user, across tiers and sessions
}


def parse_overrides(raw: str) -> dict[str, OperationLimit]:
    """``BOXOFFICE_OPERATION_LIMITS``; raises ``ConfigurationError`` when malformed."""
    if not raw.strip():
        return {}
    try:
        data: Any = orjson.loads(raw)
        if not isinstance(data, dict):
            raise TypeError("not an object")
        out: dict[str, OperationLimit] = {}
        for name, value in data.items():
            limit, window, *per = value
            if int(limit) < 1 or float(window) <= 0 or len(per) > 1:
                raise ValueError(name)
            out[str(name)] = OperationLimit(int(limit), float(window), per[0] if per else None)
        return out
    except (TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise ConfigurationError(
            'BOXOFFICE_OPERATION_LIMITS must be a JSON object {"operation": [limit, seconds]}'
        ) from exc


def limit_for(
    limits: Mapping[str, OperationLimit], operation: str, *, is_mutation: bool
) -> OperationLimit | None:
    found = limits.get(operation)
    if found is None and is_mutation:
        found = limits.get(ANY_MUTATION)
    return found


def _object_of(arguments: Mapping[str, Any], path: str) -> str | None:
    value: Any = arguments
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        if value is None:
            return None
    return str(value)


async def hit(
    *,
    rate_limiter: RateLimiter,
    rule: OperationLimit,
    operation: str,
    user_id: str | None,
    ip: str | None,
    arguments: Mapping[str, Any],
) -> None:
    """Count one call; raise ``RateLimited`` past the rule's limit. Anonymous calls without
    an IP are not counted (nothing to key them by)."""
    key = key_for(rule, operation, user_id=user_id, ip=ip, arguments=arguments)
    if key is None:
        return
    enforce(
        await rate_limiter.hit(key, limit=rule.limit, window_seconds=rule.window_seconds),
        operation,
    )


def key_for(
    rule: OperationLimit,
    operation: str,
    *,
    user_id: str | None,
    ip: str | None,
    arguments: Mapping[str, Any],
) -> str | None:
    """The counter a call counts under; None for an anonymous call without an IP."""
    caller = f"u:{user_id}" if user_id else (f"ip:{ip}" if ip else None)
    if caller is None:
        return None
    key = f"op:{operation}:{caller}"
    if rule.per:
        key += f":{_object_of(arguments, rule.per)}"
    return key


def enforce(decision: RateDecision, operation: str) -> None:
    """Raise ``RateLimited`` for a hit past the limit."""
    if not decision.allowed:
        raise RateLimited(
            f"Too many {operation} calls; try again later.", retry_after=decision.retry_after
        )
