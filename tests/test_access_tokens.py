"""Forged, confused and incomplete access tokens, each presented over GraphQL: all refused with
UNAUTHENTICATED (and a queue token is never an access token, nor the other way round)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlmodel import delete

from boxoffice.errors import QueueTokenInvalid
from boxoffice.models.identity import User
from boxoffice.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET
from tests.helpers import gql, make_user, token_for

pytestmark = pytest.mark.parametrize("backend", ["embedded"])

SECRET = TEST_JWT_SECRET.encode()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_PUBLIC_PEM = RSA_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(user_id: str, **changes: Any) -> dict[str, Any]:
    """Claims as sign-in issues them; a value of ``None`` drops the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "boxoffice",
        "aud": "boxoffice-api",
        "sub": user_id,
        "iat": now,
        "exp": now + 600,
        "jti": "jti-1",
        "sid": "sid-1",
        "ver": 1,  # a new user's token version
        "roles": ["OPERATOR"],  # an attacker always asks for the most
        "ten": {},
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def hs256(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def alg_none(claims: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims).encode())}."


def rs256(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, RSA_KEY, algorithm="RS256")


def hs256_with_public_key(claims: dict[str, Any]) -> str:
    """The classic confusion: HMAC keyed with a public key the attacker knows."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(RSA_PUBLIC_PEM, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def hs512(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS512")


Forge = Callable[[str], str]
FORGERIES: dict[str, Forge] = {
    "alg-none": lambda uid: alg_none(claims_for(uid)),
    "alg-None-casing": lambda uid: alg_none(claims_for(uid)).replace(
        b64(b'{"alg": "none", "typ": "JWT"}'), b64(b'{"alg": "None", "typ": "JWT"}')
    ),
    "rs256-own-key": lambda uid: rs256(claims_for(uid)),
    "hs256-keyed-with-public-key": lambda uid: hs256_with_public_key(claims_for(uid)),
    "hs512-right-secret": lambda uid: hs512(claims_for(uid)),
    "wrong-secret": lambda uid: jwt.encode(claims_for(uid), b"k" * 48, algorithm="HS256"),
    "no-exp": lambda uid: hs256(claims_for(uid, exp=None)),
    "no-aud": lambda uid: hs256(claims_for(uid, aud=None)),
    "no-iss": lambda uid: hs256(claims_for(uid, iss=None)),
    "no-sub": lambda uid: hs256(claims_for(uid, sub=None)),
    "no-iat": lambda uid: hs256(claims_for(uid, iat=None)),
    "no-jti": lambda uid: hs256(claims_for(uid, jti=None)),
    "wrong-aud": lambda uid: hs256(claims_for(uid, aud="boxoffice-admin")),
    "queue-aud": lambda uid: hs256(claims_for(uid, aud="boxoffice-queue")),
    "wrong-iss": lambda uid: hs256(claims_for(uid, iss="someone-else")),
    "expired": lambda uid: hs256(
        claims_for(uid, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    ),
    "iat-far-ahead": lambda uid: hs256(
        claims_for(uid, iat=int(time.time()) + 86400, exp=int(time.time()) + 90000)
    ),
    "exp-not-a-number": lambda uid: hs256(claims_for(uid, exp="tomorrow")),
    "tampered-payload": lambda uid: ".".join(
        (
            hs256(claims_for(uid, roles=[])).split(".")[0],
            b64(json.dumps(claims_for(uid)).encode()),
            hs256(claims_for(uid, roles=[])).split(".")[2],
        )
    ),
    "garbage": lambda uid: "a.b.c",
}


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("forge", list(FORGERIES.values()), ids=list(FORGERIES))
async def test_forged_and_incomplete_tokens_are_refused(
    client: httpx.AsyncClient, rt: Runtime, forge: Forge
):
    # given a real customer, and a token an attacker made for them
    user = await make_user(rt, "victim@example.com")
    # when it is presented
    result = await gql(client, "{ me { id roles } }", token=forge(user.id))
    # then the request is refused outright
    assert result.code == "UNAUTHENTICATED", result.body
    assert (result.body.get("data") or {}).get("me") is None


async def test_the_forgery_harness_makes_accepted_tokens_when_nothing_is_wrong(
    client: httpx.AsyncClient, rt: Runtime
):
    # a control: the same claims, correctly signed, are accepted (so refusals above are real)
    user = await make_user(rt, "control@example.com")
    result = await gql(
        client, "{ me { id } }", token=hs256(claims_for(user.id, ver=user.token_version))
    )
    assert result.data["me"]["id"] == user.id


async def test_a_queue_token_is_not_an_access_token(client: httpx.AsyncClient, rt: Runtime):
    user = await make_user(rt, "queued@example.com")
    queue_token = rt.queue_tokens.issue(user_id=user.id, event_id="e1").token
    result = await gql(client, "{ me { id } }", token=queue_token)
    assert result.code == "UNAUTHENTICATED"


async def test_an_access_token_is_not_a_queue_token(rt: Runtime):
    user = await make_user(rt, "access@example.com")
    access = await token_for(rt, user)
    with pytest.raises(QueueTokenInvalid) as refused:
        rt.queue_tokens.verify(access, user_id=user.id, event_id="e1")
    assert refused.value.reason == "FORGED"


async def test_a_token_of_a_deleted_user_is_refused(client: httpx.AsyncClient, rt: Runtime):
    # given a user with a valid token, who is then removed
    user = await make_user(rt, "gone@example.com")
    token = await token_for(rt, user)
    async with rt.db.write() as session:
        await session.exec(delete(User).where(User.id == user.id))  # type: ignore[call-overload]
    # when the token is used
    result = await gql(client, "{ me { id } }", token=token)
    # then it is refused as a token, not answered as a missing object
    assert result.code == "UNAUTHENTICATED"
    assert result.error["extensions"]["reason"] == "USER_UNKNOWN"
