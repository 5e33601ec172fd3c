"""Queue tokens: bound to one user and one event, short-lived, one use, never an access token."""

from __future__ import annotations

import asyncio
import time

import jwt
import pytest

from boxoffice.errors import QueueTokenInvalid, Unauthenticated
from boxoffice.runtime import Runtime
from boxoffice.services.queue_tokens import QUEUE_AUDIENCE, QueueTokens
from tests.conftest import TEST_JWT_SECRET

SECRET = TEST_JWT_SECRET.encode()


def tokens(secret: bytes = SECRET) -> QueueTokens:
    return QueueTokens(secret, issuer="boxoffice", ttl_seconds=150)


def reason_of(token: str, *, user_id: str = "u1", event_id: str = "e1") -> str:
    with pytest.raises(QueueTokenInvalid) as caught:
        tokens().verify(token, user_id=user_id, event_id=event_id)
    assert caught.value.code == "QUEUE_TOKEN_INVALID"
    return str(caught.value.details["reason"])


def test_a_token_verifies_for_its_user_and_event():
    # given a token issued now
    issued = tokens().issue(user_id="u1", event_id="e1")
    # when it is verified for its user and event
    claims = tokens().verify(issued.token, user_id="u1", event_id="e1")
    # then its claims are the issued ones and it lives 150 s
    assert claims == issued.claims
    assert claims.expires_at - claims.issued_at == 150
    raw = jwt.decode(issued.token, options={"verify_signature": False})
    assert raw["aud"] == QUEUE_AUDIENCE and raw["sub"] == "u1" and raw["evt"] == "e1"
    assert raw["jti"]


def test_a_token_never_outlives_the_admission_window():
    now = time.time()
    issued = tokens().issue(user_id="u1", event_id="e1", not_after=now + 30, now=now)
    assert issued.claims.expires_at == int(now + 30)


def test_forged_tokens_are_refused():
    genuine = tokens().issue(user_id="u1", event_id="e1").token
    other_key = tokens(b"another-secret-" + b"y" * 40).issue(user_id="u1", event_id="e1").token
    header, _payload, signature = genuine.split(".")
    tampered_payload = jwt.utils.base64url_encode(
        b'{"iss":"boxoffice","aud":"boxoffice-queue","sub":"u2","evt":"e1",'
        b'"iat":1,"exp":9999999999,"jti":"x"}'
    ).decode()
    unsigned = jwt.encode(
        {"iss": "boxoffice", "aud": QUEUE_AUDIENCE, "sub": "u1", "evt": "e1"},
        key=None,
        algorithm="none",
    )
    for forged in (
        other_key,
        f"{header}.{tampered_payload}.{signature}",
        unsigned,
        "not-a-token",
        "",
    ):
        assert reason_of(forged) == "FORGED", forged


def test_a_token_missing_a_claim_is_refused():
    now = int(time.time())
    no_event = jwt.encode(
        {
            "iss": "boxoffice",
            "aud": QUEUE_AUDIENCE,
            "sub": "u1",
            "iat": now,
            "exp": now + 60,
            "jti": "j",
        },
        SECRET,
        algorithm="HS256",
    )
    assert reason_of(no_event) == "FORGED"


def test_an_expired_token_is_refused():
    stale = tokens().issue(user_id="u1", event_id="e1", now=time.time() - 600).token
    assert reason_of(stale) == "EXPIRED"


def test_a_token_for_another_event_or_user_is_refused():
    token = tokens().issue(user_id="u1", event_id="e1").token
    assert reason_of(token, event_id="e2") == "WRONG_EVENT"
    assert reason_of(token, user_id="u2") == "WRONG_USER"


async def test_a_used_token_is_refused(rt: Runtime):
    # given a genuine token
    issued = rt.queue_tokens.issue(user_id="u1", event_id="e1")
    # when twenty requests try to spend it at once
    results = await asyncio.gather(
        *(
            rt.queue_tokens.consume(
                issued.token, codes=rt.backends.codes, user_id="u1", event_id="e1"
            )
            for _ in range(20)
        ),
        return_exceptions=True,
    )
    # then exactly one gets in and the others are told it was replayed
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    refused = [r for r in results if isinstance(r, QueueTokenInvalid)]
    assert len(refused) == 19
    assert {r.reason for r in refused} == {"REPLAYED"}


async def test_consume_verifies_before_spending(rt: Runtime):
    # given a token presented for the wrong event
    issued = rt.queue_tokens.issue(user_id="u1", event_id="e1")
    with pytest.raises(QueueTokenInvalid) as caught:
        await rt.queue_tokens.consume(
            issued.token, codes=rt.backends.codes, user_id="u1", event_id="e2"
        )
    assert caught.value.details["reason"] == "WRONG_EVENT"
    # then it was not spent: its own event still accepts it once
    await rt.queue_tokens.consume(
        issued.token, codes=rt.backends.codes, user_id="u1", event_id="e1"
    )


async def test_access_and_queue_tokens_are_not_interchangeable(rt: Runtime):
    # given an access token and a queue token of the same user, signed with the same secret
    access = rt.auth.tokens.issue(
        user_id="u1", session_id="s1", version=1, roles=["CUSTOMER"], tenant_roles={}
    )
    queue = rt.queue_tokens.issue(user_id="u1", event_id="e1").token
    # then neither is accepted as the other
    with pytest.raises(QueueTokenInvalid) as caught:
        rt.queue_tokens.verify(access, user_id="u1", event_id="e1")
    assert caught.value.details["reason"] == "FORGED"
    with pytest.raises(Unauthenticated):
        rt.auth.tokens.decode(queue)
