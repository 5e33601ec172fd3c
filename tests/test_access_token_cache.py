"""Access tokens: verification, and the cache of verified tokens that must never outlive a
token's expiry nor accept a token that differs by a byte."""

from __future__ import annotations

import time

import jwt
import pytest

from boxoffice.errors import Unauthenticated
from boxoffice.services import access_tokens
from boxoffice.services.access_tokens import LEEWAY_SECONDS, AccessTokens

SECRET = b"s" * 40


def tokens() -> AccessTokens:
    return AccessTokens(SECRET, issuer="bo", audience="bo-api", ttl_seconds=60)


def issue(t: AccessTokens) -> str:
    return t.issue(user_id="u1", session_id="s1", version=2, roles=["CUSTOMER"], tenant_roles={})


def test_a_verified_token_is_served_again_until_it_expires(monkeypatch: pytest.MonkeyPatch):
    t = tokens()
    token = issue(t)
    first = t.decode(token)
    assert t.decode(token) is first  # the second decode comes from the cache
    assert (first.user_id, first.session_id, first.version) == ("u1", "s1", 2)
    # when the clock passes the expiry (and the leeway)
    later = time.time() + 60 + LEEWAY_SECONDS + 1
    monkeypatch.setattr(access_tokens.time, "time", lambda: later)
    with pytest.raises(Unauthenticated) as raised:
        t.decode(token)
    assert raised.value.details["reason"] == "TOKEN_EXPIRED"
    assert token not in t._verified


def test_an_expired_token_is_refused_from_scratch():
    now = int(time.time())
    claims = {"iss": "bo", "aud": "bo-api", "sub": "u", "jti": "j", "iat": now - 100}
    expired = jwt.encode({**claims, "exp": now - LEEWAY_SECONDS - 1}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated) as raised:
        tokens().decode(expired)
    assert raised.value.details["reason"] == "TOKEN_EXPIRED"


def test_a_token_differing_by_a_byte_is_refused_even_when_the_original_is_cached():
    t = tokens()
    token = issue(t)
    t.decode(token)
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    for forged in (f"{head}.{payload}.{flipped}", token + " ", token[:-1]):
        with pytest.raises(Unauthenticated) as raised:
            t.decode(forged)
        assert raised.value.details["reason"] == "TOKEN_INVALID"


def test_other_issuers_audiences_algorithms_and_missing_claims_are_refused():
    t = tokens()
    now = int(time.time())
    base = {"iss": "bo", "aud": "bo-api", "sub": "u", "iat": now, "exp": now + 60, "jti": "j"}
    bad = [
        jwt.encode({**base, "iss": "other"}, SECRET, algorithm="HS256"),
        jwt.encode({**base, "aud": "other"}, SECRET, algorithm="HS256"),
        jwt.encode(base, None, algorithm="none"),
        jwt.encode({k: v for k, v in base.items() if k != "jti"}, SECRET, algorithm="HS256"),
        jwt.encode(base, b"another-secret-" + b"x" * 30, algorithm="HS256"),
    ]
    for token in bad:
        with pytest.raises(Unauthenticated):
            t.decode(token)
    assert t.decode(jwt.encode(base, SECRET, algorithm="HS256")).user_id == "u"


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(access_tokens, "VERIFIED_CACHE_SIZE", 3)
    t = tokens()
    for _ in range(5):
        t.decode(issue(t))
    assert len(t._verified) == 3
