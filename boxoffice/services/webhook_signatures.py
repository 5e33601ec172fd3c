"""Signing webhook deliveries, and verifying them as an integrator does.

``Boxoffice-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` where each ``v1`` is
HMAC-SHA256, keyed with one signing secret (its UTF-8 bytes), of ``"<t>.<raw body>"``. While a
rotated-out secret is still in its grace period the header carries one ``v1`` per valid
secret, so receivers holding either secret verify. Receivers reject a ``t`` too far from their
clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - a marker, not a secret
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(body: bytes, signing_secrets: Sequence[str], *, timestamp: int | None = None) -> str:
    """The ``Boxoffice-Signature`` header value for ``body``."""
    if not signing_secrets:
        raise ValueError("no signing secret")
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={_digest(s, t, body)}" for s in signing_secrets)])


def verify(
    header: str,
    body: bytes,
    secret: str,
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """True when one ``v1`` of ``header`` is ``body``'s signature under ``secret`` and ``t``
    is within ``tolerance_seconds`` of ``now``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = _digest(secret, timestamp, body)
    return any(hmac.compare_digest(expected, c) for c in candidates)
