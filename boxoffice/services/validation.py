"""Input checks shared by services; each failure names the offending field."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from boxoffice.errors import BadUserInput
from boxoffice.money import to_minor

_EMAIL = re.compile(
    r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9-]{1,63})+$"
)
_PHONE = re.compile(r"^\+?[0-9]{6,15}$")
MAX_AMOUNT_MINOR = 10**9  # ten million yuan: beyond any ticket order, within a 32-bit column


def email(value: str, *, field: str = "email") -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise BadUserInput(f"{field} is not a valid e-mail address", field=field)
    return value


def phone(value: str, *, field: str = "phone") -> str:
    """Digits with an optional leading '+'; an 11-digit mainland number gets +86."""
    compact = re.sub(r"[\s()-]", "", value)
    if not _PHONE.match(compact):
        raise BadUserInput(f"{field} is not a valid phone number", field=field)
    if not compact.startswith("+"):
        compact = (
            "+86" + compact if len(compact) == 11 and compact.startswith("1") else "+" + compact
        )
    return compact


def text(
    value: str | None,
    *,
    field: str,
    min_length: int = 1,
    max_length: int = 200,
    required: bool = True,
) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            raise BadUserInput(f"{field} is required", field=field)
        return ""
    if len(value) < min_length:
        raise BadUserInput(f"{field} must be at least {min_length} characters", field=field)
    if len(value) > max_length:
        raise BadUserInput(f"{field} must be at most {max_length} characters", field=field)
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in value):
        raise BadUserInput(f"{field} contains control characters", field=field)
    return value


def optional_text(value: str | None, *, field: str, max_length: int = 200) -> str | None:
    cleaned = text(value, field=field, max_length=max_length, required=False)
    return cleaned or None


def url(value: str | None, *, field: str) -> str | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(value) > 500:
        raise BadUserInput(f"{field} must be an http(s) URL", field=field)
    return value


def positive_int(
    value: int, *, field: str, maximum: int | None = None, allow_zero: bool = False
) -> int:
    if value < 0 or (value == 0 and not allow_zero):
        raise BadUserInput(f"{field} must be {'≥ 0' if allow_zero else '> 0'}", field=field)
    if maximum is not None and value > maximum:
        raise BadUserInput(f"{field} must be at most {maximum}", field=field)
    return value


def non_negative_amount(value: Decimal, *, field: str) -> Decimal:
    if not value.is_finite() or value < 0:
        raise BadUserInput(f"{field} must be ≥ 0", field=field)
    return value


def amount_minor(value: Decimal, *, field: str, allow_zero: bool = False) -> int:
    """A money amount with at most two decimal places, as minor units: > 0 (or ≥ 0)."""
    if not value.is_finite() or value < 0 or (value == 0 and not allow_zero):
        raise BadUserInput(f"{field} must be {'≥ 0' if allow_zero else '> 0'}", field=field)
    minor = to_minor(value, field=field)
    if minor > MAX_AMOUNT_MINOR:
        raise BadUserInput(f"{field} is too large", field=field)
    return minor


def percent_bp(value: Decimal, *, field: str) -> int:
    """A percentage in (0, 100] with at most two decimal places, as basis points (1 % = 100)."""
    if not value.is_finite() or value <= 0 or value > 100:
        raise BadUserInput(f"{field} must be a percentage above 0 and at most 100", field=field)
    bp = value * 100
    if bp != bp.to_integral_value():
        raise BadUserInput(f"{field} must have at most two decimal places", field=field)
    return int(bp)


def aware(value: datetime, *, field: str) -> datetime:
    if value.tzinfo is None:
        raise BadUserInput(f"{field} must include a UTC offset", field=field)
    return value


def time_window(
    starts_at: datetime | None,
    ends_at: datetime | None,
    *,
    start_field: str = "startsAt",
    end_field: str = "endsAt",
) -> tuple[datetime | None, datetime | None]:
    """An optional [starts_at, ends_at) window: aware datetimes, the end after the start."""
    if starts_at is not None:
        aware(starts_at, field=start_field)
    if ends_at is not None:
        aware(ends_at, field=end_field)
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise BadUserInput(f"{end_field} must come after {start_field}", field=end_field)
    return starts_at, ends_at
