"""Cheap per-request revocation of access tokens, kept in the short-lived store.

A JWT cannot be recalled, so every request checks two markers in one round trip: one per user
(frozen, or "tokens of a version below N are dead") and one per sign-in session (logged out, or a
refresh token was reused). Markers live as long as an access token can, then vanish: past that
no token they would stop can still be valid.
"""

from __future__ import annotations

from boxoffice.backends.codes import CodeStore
from boxoffice.errors import AccountFrozen, Unauthenticated
from boxoffice.services.access_tokens import AccessClaims

FROZEN = "frozen"


def _user_key(user_id: str) -> str:
    return f"rv:u:{user_id}"


def _session_key(session_id: str) -> str:
    return f"rv:s:{session_id}"


async def revoke_user(
    codes: CodeStore, user_id: str, *, frozen: bool, version: int, ttl_seconds: float
) -> None:
    """Kill every access token of ``user_id`` (all while frozen, else those below ``version``)."""
    await codes.put(_user_key(user_id), FROZEN if frozen else str(version), ttl_seconds=ttl_seconds)


async def revoke_session(codes: CodeStore, session_id: str, *, ttl_seconds: float) -> None:
    await codes.put(_session_key(session_id), "1", ttl_seconds=ttl_seconds)


async def check(codes: CodeStore, claims: AccessClaims) -> None:
    keys = [_user_key(claims.user_id)]
    if claims.session_id:
        keys.append(_session_key(claims.session_id))
    markers = await codes.get_many(keys)
    user_marker = markers[0]
    if user_marker == FROZEN:
        raise AccountFrozen()
    if user_marker is not None and claims.version < int(user_marker):
        raise Unauthenticated("This sign-in was revoked.", reason="TOKEN_REVOKED")
    if len(markers) > 1 and markers[1] is not None:
        raise Unauthenticated("This sign-in was ended.", reason="TOKEN_REVOKED")
