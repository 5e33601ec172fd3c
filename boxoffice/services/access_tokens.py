"""Access tokens: short-lived HS256 JWTs with a fixed algorithm and required claims.

Claims: ``iss aud sub iat exp jti`` (required) plus ``sid`` (the sign-in session, i.e. the
refresh-token family), ``ver`` (the user's token version, bumped to revoke), ``roles``
(platform roles) and ``ten`` (tenant id → tenant roles).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from boxoffice.errors import Unauthenticated
from boxoffice.ids import new_id

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti"]
LEEWAY_SECONDS = 5
VERIFIED_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: str
    session_id: str
    token_id: str
    issued_at: int
    expires_at: int
    version: int
    roles: frozenset[str]
    tenant_roles: Mapping[str, frozenset[str]]


class AccessTokens:
    def __init__(self, secret: bytes, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds
        # tokens already verified, by their exact text: PyJWT spends ~150 us per decode (most of
        # a hold's auth cost); a verified token only has its expiry to check again
        self._verified: OrderedDict[str, AccessClaims] = OrderedDict()

    def issue(
        self,
        *,
        user_id: str,
        session_id: str,
        version: int,
        roles: list[str],
        tenant_roles: Mapping[str, list[str]],
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": new_id(),
            "sid": session_id,
            "ver": version,
            "roles": sorted(roles),
            "ten": {tenant: sorted(r) for tenant, r in tenant_roles.items()},
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def decode(self, token: str) -> AccessClaims:
        """Verify signature, algorithm, issuer, audience and expiry; raise ``Unauthenticated``.
        A token verified before is looked up by its exact text and only its expiry checked."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() > known.expires_at + LEEWAY_SECONDS:
                del self._verified[token]
                raise Unauthenticated("The access token has expired.", reason="TOKEN_EXPIRED")
            self._verified.move_to_end(token)
            return known
        claims = self._verify(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("The access token has expired.", reason="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The access token is not valid.", reason="TOKEN_INVALID") from exc
        try:
            return AccessClaims(
                user_id=str(claims["sub"]),
                session_id=str(claims.get("sid") or ""),
                token_id=str(claims["jti"]),
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
                version=int(claims.get("ver") or 0),
                roles=frozenset(claims.get("roles") or ()),
                tenant_roles={
                    str(t): frozenset(r) for t, r in dict(claims.get("ten") or {}).items()
                },
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise Unauthenticated("The access token is not valid.", reason="TOKEN_INVALID") from exc
