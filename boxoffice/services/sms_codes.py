"""Six-digit SMS verification codes: five minutes to live, five tries, one use."""

from __future__ import annotations

import hmac
from enum import StrEnum

from sqlmodel import col, select

from boxoffice import pii
from boxoffice.backends.codes import CodeStore
from boxoffice.backends.rate_limits import RateLimiter
from boxoffice.db import Database
from boxoffice.errors import AlreadyExists, BadUserInput, RateLimited
from boxoffice.ids import numeric_code
from boxoffice.models.identity import User
from boxoffice.providers.messaging import SmsSender
from boxoffice.services import validation

CODE_TTL_SECONDS = 300
MAX_ATTEMPTS = 5
# (key prefix, limit, window seconds)
PHONE_LIMITS = (("sms:phone-min", 1, 60), ("sms:phone-day", 10, 86_400))
IP_LIMIT = ("sms:ip", 30, 3600)


class SmsPurpose(StrEnum):
    REGISTER = "REGISTER"
    LOGIN = "LOGIN"
    RESET = "RESET"


def _code_key(purpose: SmsPurpose, phone: str) -> str:
    return f"sms:code:{purpose}:{phone}"


def _tries_key(purpose: SmsPurpose, phone: str) -> str:
    return f"sms:tries:{purpose}:{phone}"


async def send_code(
    *,
    db: Database,
    codes: CodeStore,
    rate_limiter: RateLimiter,
    sms: SmsSender,
    phone: str,
    purpose: SmsPurpose,
    ip: str | None,
) -> None:
    """Send a code. For LOGIN and RESET an unknown number gets nothing, and the caller cannot
    tell (no account enumeration); REGISTER of a known number answers ``ALREADY_EXISTS``.

    Raises ``BadUserInput`` (phone), ``AlreadyExists``, ``RateLimited``.
    """
    phone = validation.phone(phone)
    if ip:
        name, limit, window = IP_LIMIT
        decision = await rate_limiter.hit(f"{name}:{ip}", limit=limit, window_seconds=window)
        if not decision.allowed:
            raise RateLimited(retry_after=decision.retry_after)
    for name, limit, window in PHONE_LIMITS:
        decision = await rate_limiter.hit(f"{name}:{phone}", limit=limit, window_seconds=window)
        if not decision.allowed:
            raise RateLimited(
                "Too many codes for this number; wait.", retry_after=decision.retry_after
            )
    async with db.read() as session:
        known = (
            await session.exec(
                select(col(User.id)).where(col(User.phone_hash) == pii.phone_hash(phone))
            )
        ).first()
    if purpose is SmsPurpose.REGISTER and known:
        raise AlreadyExists("This phone number is already registered.", field="phone")
    if purpose is not SmsPurpose.REGISTER and not known:
        return
    code = numeric_code(6)
    await codes.put(_code_key(purpose, phone), code, ttl_seconds=CODE_TTL_SECONDS)
    await codes.delete(_tries_key(purpose, phone))
    await sms.send_sms(
        phone, f"[boxoffice] Your verification code is {code}. It expires in 5 minutes."
    )


async def verify_code(*, codes: CodeStore, phone: str, purpose: SmsPurpose, code: str) -> None:
    """Consume the code; raise ``BadUserInput`` (field ``smsCode``) when wrong, used or expired."""
    tries = await codes.incr(_tries_key(purpose, phone), ttl_seconds=CODE_TTL_SECONDS)
    if tries > MAX_ATTEMPTS:
        await codes.delete(_code_key(purpose, phone))
        raise BadUserInput("Too many wrong codes; request a new one.", field="smsCode")
    stored = await codes.get(_code_key(purpose, phone))
    if stored is None or not hmac.compare_digest(stored.encode(), code.strip().encode()):
        raise BadUserInput("The verification code is wrong or has expired.", field="smsCode")
    if await codes.take(_code_key(purpose, phone)) != stored:
        raise BadUserInput("The verification code was already used.", field="smsCode")
    await codes.delete(_tries_key(purpose, phone))
