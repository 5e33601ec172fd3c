"""Queue tokens: the waiting room's pass into checkout for one user and one event.

An HS256 JWT signed with the JWT secret but for its own audience (``boxoffice-queue``), so a
queue token is never accepted as an access token (``AccessTokens.decode`` checks its audience)
and an access token is never accepted here. Claims, all required: ``iss aud sub evt iat exp
jti``; ``exp`` is 2–3 minutes after issue (never past the end of the admission window).

``verify`` checks the token alone; ``consume`` also spends it: its ``jti`` is marked used in
the short-lived store for the token's remaining lifetime, so a token enters checkout once.
Each failure raises ``QueueTokenInvalid`` with a ``reason`` detail (``QueueTokenReason``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import jwt

from boxoffice.backends.codes import CodeStore
from boxoffice.errors import QueueTokenInvalid
from boxoffice.ids import new_id

ALGORITHM = "HS256"
QUEUE_AUDIENCE = "boxoffice-queue"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "evt", "iat", "exp", "jti"]
LEEWAY_SECONDS = 2


class QueueTokenReason(StrEnum):
    FORGED = "FORGED"  # bad signature, not a queue token of ours, or malformed
    EXPIRED = "EXPIRED"
    WRONG_EVENT = "WRONG_EVENT"
    WRONG_USER = "WRONG_USER"
    REPLAYED = "REPLAYED"  # already consumed


@dataclass(frozen=True, slots=True)
class QueueTokenClaims:
    user_id: str
    event_id: str
    token_id: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class IssuedQueueToken:
    token: str
    claims: QueueTokenClaims

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.claims.expires_at, UTC)


def _used_key(token_id: str) -> str:
    return f"qt:used:{token_id}"


def _refuse(reason: QueueTokenReason, message: str) -> QueueTokenInvalid:
    return QueueTokenInvalid(message, reason=str(reason))


class QueueTokens:
    def __init__(
        self,
        secret: bytes,
        *,
        issuer: str,
        ttl_seconds: int = 150,
        audience: str = QUEUE_AUDIENCE,
    ) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(
        self,
        *,
        user_id: str,
        event_id: str,
        not_after: float | None = None,
        now: float | None = None,
    ) -> IssuedQueueToken:
        """A token for ``user_id`` and ``event_id``, valid ``ttl_seconds`` from ``now`` but never
        past ``not_after`` (the end of the user's admission window)."""
        issued = int(time.time() if now is None else now)
        expires = issued + self.ttl_seconds
        if not_after is not None:
            expires = min(expires, math.floor(not_after))
        claims = QueueTokenClaims(user_id, event_id, new_id(), issued, expires)
        token = jwt.encode(
            {
                "iss": self.issuer,
                "aud": self.audience,
                "sub": user_id,
                "evt": event_id,
                "iat": claims.issued_at,
                "exp": claims.expires_at,
                "jti": claims.token_id,
            },
            self._secret,
            algorithm=ALGORITHM,
        )
        return IssuedQueueToken(token, claims)

    def verify(self, token: str, *, user_id: str, event_id: str) -> QueueTokenClaims:
        """The claims of a genuine, unexpired queue token of ``user_id`` for ``event_id``.

        Raises ``QueueTokenInvalid`` with reason FORGED, EXPIRED, WRONG_EVENT or WRONG_USER.
        Does not look at whether the token was used (``consume`` does).
        """
        try:
            raw = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
            claims = QueueTokenClaims(
                user_id=str(raw["sub"]),
                event_id=str(raw["evt"]),
                token_id=str(raw["jti"]),
                issued_at=int(raw["iat"]),
                expires_at=int(raw["exp"]),
            )
        except jwt.ExpiredSignatureError as exc:
            raise _refuse(QueueTokenReason.EXPIRED, "The queue token has expired.") from exc
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise _refuse(QueueTokenReason.FORGED, "The queue token is not valid.") from exc
        if claims.event_id != event_id:
            raise _refuse(QueueTokenReason.WRONG_EVENT, "The queue token is for another event.")
        if claims.user_id != user_id:
            raise _refuse(QueueTokenReason.WRONG_USER, "The queue token belongs to someone else.")
        return claims

    async def consume(
        self, token: str, *, codes: CodeStore, user_id: str, event_id: str
    ) -> QueueTokenClaims:
        """``verify``, then spend the token: of any number of concurrent callers exactly one
        succeeds. Raises ``QueueTokenInvalid`` (every reason of ``verify``, and REPLAYED)."""
        return await self.consume_soon(token, codes=codes, user_id=user_id, event_id=event_id)

    def consume_soon(
        self, token: str, *, codes: CodeStore, user_id: str, event_id: str
    ) -> Awaitable[QueueTokenClaims]:
        """``consume`` whose spending is sent before this returns (``put_if_absent_soon``), so
        that the caller's next round trip carries it; the answer must be awaited. ``verify``'s
        refusals are raised at once."""
        claims = self.verify(token, user_id=user_id, event_id=event_id)
        remaining = claims.expires_at + LEEWAY_SECONDS - time.time()
        stored = codes.put_if_absent_soon(
            _used_key(claims.token_id), user_id, ttl_seconds=max(1.0, remaining)
        )
        return _spent(claims, stored)

    async def restore(self, claims: QueueTokenClaims, *, codes: CodeStore) -> None:
        """Make a spent token usable again (what it was spent on did not happen)."""
        await codes.delete(_used_key(claims.token_id))


async def _spent(claims: QueueTokenClaims, stored: Awaitable[bool]) -> QueueTokenClaims:
    if not await stored:
        raise _refuse(QueueTokenReason.REPLAYED, "The queue token was already used.")
    return claims


__all__ = [
    "QUEUE_AUDIENCE",
    "IssuedQueueToken",
    "QueueTokenClaims",
    "QueueTokenReason",
    "QueueTokens",
]
