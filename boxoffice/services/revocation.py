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

A request that is rate limited per user (``schema.rate_limits``) has its hit counted in the same
round trip, by one script that reads the markers and increments the counter only when they let
the token through without anything else to do (no epoch to set, no database check): exactly
the cases where the hit would have been counted next, under that user. Otherwise nothing is
counted and the caller counts as before (under the user, or the IP once the token is refused).
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any

from sqlmodel import col, select

from boxoffice.backends.codes import CodeStore
from boxoffice.backends.fast_redis import FastRedis, FastScript
from boxoffice.backends.rate_limits import RateDecision, RateLimiter
from boxoffice.backends.rate_limits.redis import RedisRateLimiter, hit_lua, window_ms
from boxoffice.backends.redis_client import text
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


@dataclass(frozen=True, slots=True)
class Hit:
    """A rate-limit hit to count in the markers' round trip if the token passes them."""

    limiter: RateLimiter
    key: str
    limit: int
    window_seconds: float


# KEYS: epoch, checked, user marker, counter[, session marker]; ARGV: token version, issued at,
# window ms. Returns the markers, plus count and ttl when it counted: only when the markers
# let the token through with nothing more to do, as ``check`` decides below (markers in the
# canonical form ``revoke_user`` and the epoch are written in; anything else is left to it).
_CHECK_AND_HIT = (
    """
local epoch = redis.call('GET', KEYS[1])
local checked = redis.call('GET', KEYS[2])
local user = redis.call('GET', KEYS[3])
local session = false
if #KEYS > 4 then session = redis.call('GET', KEYS[5]) end
local markers = {epoch, checked, user, session}
if session or not epoch or not string.match(epoch, '^%d+$') then return markers end
if user and not (string.match(user, '^%d+$') and tonumber(ARGV[1]) >= tonumber(user)) then
  return markers
end
if not checked and tonumber(ARGV[2]) <= tonumber(epoch) then return markers end
"""
    + hit_lua(4, 3)
    + """
return {epoch, checked, user, session, count, ttl}
"""
)
_scripts: weakref.WeakKeyDictionary[FastRedis, FastScript] = weakref.WeakKeyDictionary()


def _fast_client(codes: CodeStore, limiter: RateLimiter) -> FastRedis | None:
    """The Redis both stores use on the hot path, when they share one."""
    fast = getattr(codes, "fast", None)
    if fast is None or not isinstance(limiter, RedisRateLimiter) or limiter.fast is not fast:
        return None
    return fast


async def _read_and_count(
    fast: FastRedis, codes: Any, keys: list[str], claims: AccessClaims, hit: Hit
) -> tuple[list[str | None], RateDecision | None]:
    script = _scripts.get(fast)
    if script is None:
        script = _scripts[fast] = fast.register_script(_CHECK_AND_HIT)
    limiter: RedisRateLimiter = hit.limiter  # type: ignore[assignment]
    full = [codes.full_key(k) for k in keys]
    full.insert(3, limiter.full_key(hit.key))
    reply = await script(
        keys=full, args=[claims.version, claims.issued_at, window_ms(hit.window_seconds)]
    )
    values = [text(v) for v in reply[:4]]
    if not claims.session_id:
        values.pop()
    if len(reply) < 6:
        return values, None
    return values, limiter.decision(int(reply[4]), int(reply[5]), hit.limit)


async def check(
    codes: CodeStore,
    claims: AccessClaims,
    *,
    db: Database | None = None,
    hit: Hit | None = None,
) -> RateDecision | None:
    """Raise ``AccountFrozen`` or ``Unauthenticated`` (TOKEN_REVOKED) for a revoked token.
    With ``db``, a token older than the store's memory is checked in the database too.

    With ``hit``, and both stores on one Redis: the hit is counted in the same round trip
    when the markers let the token through at once, and its decision returned; None when it
    was not counted (the caller counts it, as without ``hit``)."""
    keys = [EPOCH_KEY, _checked_key(claims), _user_key(claims.user_id)]
    if claims.session_id:
        keys.append(_session_key(claims.session_id))
    counted = None
    fast = _fast_client(codes, hit.limiter) if hit is not None else None
    if fast is not None:
        values, counted = await _read_and_count(fast, codes, keys, claims, hit)  # type: ignore[arg-type]
    else:
        values = await codes.get_many(keys)
    epoch, checked, user_marker, *session_marker = values
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
    return counted


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
