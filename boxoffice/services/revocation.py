"""Cheap per-request revocation of access tokens, kept in the short-lived store.

A JWT cannot be recalled, so every request checks two markers in one round trip: one per user
(frozen, or "tokens of a version below N are dead") and one per sign-in session (logged out, or a
refresh token was reused). Markers live as long as an access token can, then vanish: past that
no token they would stop can still be valid.

The store can lose its markers (Redis flushed or restarted empty; an embedded process
restarted), which would bring a frozen user's or an ended sign-in's access tokens back to
life until they expire. So the store also keeps an epoch — when it started remembering —
read in the same round trip and set again when it is missing. A token issued before the
epoch may predate lost markers: it is checked against the database instead (the user's
status and token version, and whether its refresh-token family was revoked). That lasts at
most one access-token lifetime after a loss; later tokens are all younger than the epoch.
A token that passed the database check leaves a "checked" marker (per user, sign-in and token
version, living as long as the token), read in the same round trip, so the database is asked
once per sign-in rather than on every request. Revocation markers are read first and win over
it: a logout, freeze or version bump after the check still refuses the token at once.
"""

from __future__ import annotations

import time

from sqlmodel import col, select

from boxoffice.backends.codes import CodeStore
from boxoffice.db import Database
from boxoffice.errors import AccountFrozen, Unauthenticated
from boxoffice.models.identity import RefreshToken, User, UserStatus
from boxoffice.services.access_tokens import AccessClaims

FROZEN = "frozen"
EPOCH_KEY = "rv:epoch"
EPOCH_TTL_SECONDS = 365 * 24 * 3600


def _user_key(user_id: str) -> str:
    return f"rv:u:{user_id}"


def _session_key(session_id: str) -> str:
    return f"rv:s:{session_id}"


def _checked_key(claims: AccessClaims) -> str:
    return f"rv:ok:{claims.user_id}:{claims.session_id or ''}:{claims.version}"


async def revoke_user(
    codes: CodeStore, user_id: str, *, frozen: bool, version: int, ttl_seconds: float
) -> None:
    """Kill every access token of ``user_id`` (all while frozen, else those below ``version``)."""
    await codes.put(_user_key(user_id), FROZEN if frozen else str(version), ttl_seconds=ttl_seconds)


async def revoke_session(codes: CodeStore, session_id: str, *, ttl_seconds: float) -> None:
    await codes.put(_session_key(session_id), "1", ttl_seconds=ttl_seconds)


async def check(codes: CodeStore, claims: AccessClaims, *, db: Database | None = None) -> None:
    """Raise ``AccountFrozen`` or ``Unauthenticated`` (TOKEN_REVOKED) for a revoked token.
    With ``db``, a token older than the store's memory is checked in the database too."""
    keys = [EPOCH_KEY, _checked_key(claims), _user_key(claims.user_id)]
    if claims.session_id:
        keys.append(_session_key(claims.session_id))
    epoch, checked, user_marker, *session_marker = await codes.get_many(keys)
    if user_marker == FROZEN:
        raise AccountFrozen()
    if user_marker is not None and claims.version < int(user_marker):
        raise Unauthenticated("This sign-in was revoked.", reason="TOKEN_REVOKED")
    if session_marker and session_marker[0] is not None:
        raise Unauthenticated("This sign-in was ended.", reason="TOKEN_REVOKED")
    if epoch is None:
        now = str(int(time.time()))
        if not await codes.put_if_absent(EPOCH_KEY, now, ttl_seconds=EPOCH_TTL_SECONDS):
            now = await codes.get(EPOCH_KEY) or now
        epoch = now
    if db is not None and claims.issued_at <= int(epoch) and checked is None:
        await _check_in_database(db, claims)
        remaining = claims.expires_at - time.time()
        if remaining > 0:
            await codes.put(_checked_key(claims), "1", ttl_seconds=remaining)


async def _check_in_database(db: Database, claims: AccessClaims) -> None:
    async with db.read() as session:
        user = await session.get(User, claims.user_id)
        ended = None
        if claims.session_id:
            ended = (
                await session.exec(
                    select(RefreshToken.id)
                    .where(
                        RefreshToken.family_id == claims.session_id,
                        col(RefreshToken.revoked_at).is_not(None),
                    )
                    .limit(1)
                )
            ).first()
    if user is None:  # the same answer live_users gives, whichever check meets it first
        raise Unauthenticated("The access token is not valid.", reason="USER_UNKNOWN")
    if user.status == UserStatus.DELETED:
        raise Unauthenticated("This sign-in was revoked.", reason="TOKEN_REVOKED")
    if user.status == UserStatus.FROZEN:
        raise AccountFrozen()
    if claims.version < user.token_version or ended is not None:
        raise Unauthenticated("This sign-in was ended.", reason="TOKEN_REVOKED")
