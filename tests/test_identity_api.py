"""Accounts and sign-in through GraphQL, on both configurations."""

from __future__ import annotations

import re

import httpx
from sqlmodel import select

from boxoffice import pii
from boxoffice.models.identity import Role, SandboxMessage
from boxoffice.runtime import Runtime
from tests.helpers import PASSWORD, gql, login, make_user, token_for

REGISTER = """
mutation Register($i: RegisterInput!) {
  register(input: $i) { accessToken refreshToken expiresIn isNew user { id roles nickname email } }
}"""
REFRESH = """
mutation Refresh($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }"""
ME = "query Me { me { id email nickname roles status } }"


async def test_register_login_me_refresh_and_reuse_revokes_family(client: httpx.AsyncClient):
    # given a new account
    reg = await gql(
        client,
        REGISTER,
        {"i": {"email": "Ann@Example.com", "password": PASSWORD, "nickname": "ann"}},
    )
    payload = reg.data["register"]
    assert payload["isNew"] is True
    assert payload["user"]["roles"] == ["CUSTOMER"]
    assert payload["user"]["email"] == "ann@example.com"
    assert payload["expiresIn"] == 900
    # when signing in and asking who we are
    signed = await login(client, "ann@example.com")
    me = await gql(client, ME, token=signed["accessToken"])
    assert me.data["me"]["id"] == payload["user"]["id"]
    # and rotating the refresh token
    first = signed["refreshToken"]
    rotated = (await gql(client, REFRESH, {"t": first})).data["refreshToken"]
    assert rotated["refreshToken"] != first
    assert (await gql(client, ME, token=rotated["accessToken"])).data["me"]["id"]
    # then presenting the old one again fails and ends the whole sign-in
    reuse = await gql(client, REFRESH, {"t": first})
    assert reuse.code == "UNAUTHENTICATED"
    assert reuse.error["extensions"]["reason"] == "REFRESH_TOKEN_REUSED"
    assert (await gql(client, REFRESH, {"t": rotated["refreshToken"]})).code == "UNAUTHENTICATED"
    assert (await gql(client, ME, token=rotated["accessToken"])).code == "UNAUTHENTICATED"
    # while the other sign-in (from register) is untouched
    assert (await gql(client, ME, token=payload["accessToken"])).data["me"]["id"]


async def test_wrong_password_is_invalid_credentials(client: httpx.AsyncClient, rt: Runtime):
    await make_user(rt, "bob@example.com")
    result = await gql(
        client,
        'mutation { login(input: {email: "bob@example.com", password: "nope-wrong-1"}) '
        "{ accessToken } }",
    )
    assert result.code == "INVALID_CREDENTIALS"
    assert result.error["extensions"]["status"] == 2004
    unknown = await gql(
        client,
        'mutation { login(input: {email: "nobody@example.com", password: "nope-wrong-1"}) '
        "{ accessToken } }",
    )
    assert unknown.code == "INVALID_CREDENTIALS"
    assert unknown.error["message"] == result.error["message"]


async def test_duplicate_email_is_already_exists(client: httpx.AsyncClient):
    variables = {"i": {"email": "dup@example.com", "password": PASSWORD, "nickname": "d"}}
    assert (await gql(client, REGISTER, variables)).data
    again = await gql(client, REGISTER, {"i": {**variables["i"], "email": "DUP@example.com"}})
    assert again.code == "ALREADY_EXISTS"
    assert again.error["extensions"]["field"] == "email"


async def test_malformed_input_names_the_field(client: httpx.AsyncClient):
    cases = [
        ({"email": "not-an-email", "password": PASSWORD, "nickname": "x"}, "email"),
        ({"email": "ok@example.com", "password": "short", "nickname": "x"}, "password"),
        ({"email": "ok@example.com", "password": PASSWORD, "nickname": "  "}, "nickname"),
        ({"phone": "12", "password": PASSWORD, "nickname": "x"}, "phone"),
        ({"phone": "13800138000", "password": PASSWORD, "nickname": "x"}, "smsCode"),
    ]
    for given, field in cases:
        result = await gql(client, REGISTER, {"i": given})
        assert result.code == "BAD_USER_INPUT", (given, result.body)
        assert result.error["extensions"]["field"] == field, (given, result.body)
    nothing_written = await gql(
        client,
        'mutation { login(input: {email: "ok@example.com", password: "correct-horse-9"}) { accessToken } }',
    )
    assert nothing_written.code == "INVALID_CREDENTIALS"


async def test_frozen_users_token_stops_at_once(client: httpx.AsyncClient, rt: Runtime):
    # given a signed-in customer and an operator
    user = await make_user(rt, "cat@example.com")
    operator = await make_user(rt, "op@example.com", Role.OPERATOR)
    signed = await login(client, "cat@example.com")
    assert (await gql(client, ME, token=signed["accessToken"])).data["me"]["status"] == "ACTIVE"
    # when the operator freezes the customer
    frozen = await gql(
        client,
        "mutation($u: ID!) { freezeUser(userId: $u) { id status } }",
        {"u": user.id},
        token=await token_for(rt, operator),
    )
    assert frozen.data["freezeUser"]["status"] == "FROZEN"
    # then the still-unexpired token answers ACCOUNT_FROZEN, and so does every way back in
    assert (await gql(client, ME, token=signed["accessToken"])).code == "ACCOUNT_FROZEN"
    assert (await gql(client, REFRESH, {"t": signed["refreshToken"]})).code == "UNAUTHENTICATED"
    relogin = await gql(
        client,
        'mutation { login(input: {email: "cat@example.com", password: "correct-horse-9"}) '
        "{ accessToken } }",
    )
    assert relogin.code == "ACCOUNT_FROZEN"
    # and after unfreezing, old tokens stay dead while a new sign-in works
    await gql(
        client,
        "mutation($u: ID!) { unfreezeUser(userId: $u) { status } }",
        {"u": user.id},
        token=await token_for(rt, operator),
    )
    assert (await gql(client, ME, token=signed["accessToken"])).code == "UNAUTHENTICATED"
    fresh = await login(client, "cat@example.com")
    assert (await gql(client, ME, token=fresh["accessToken"])).data["me"]["status"] == "ACTIVE"


async def test_only_operators_freeze(client: httpx.AsyncClient, rt: Runtime):
    user = await make_user(rt, "dee@example.com")
    other = await make_user(rt, "eve@example.com")
    result = await gql(
        client,
        "mutation($u: ID!) { freezeUser(userId: $u) { id } }",
        {"u": user.id},
        token=await token_for(rt, other),
    )
    assert result.code == "FORBIDDEN"
    anonymous = await gql(
        client, "mutation($u: ID!) { freezeUser(userId: $u) { id } }", {"u": user.id}
    )
    assert anonymous.code == "UNAUTHENTICATED"


async def _last_code(rt: Runtime, phone: str) -> str:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(SandboxMessage).where(SandboxMessage.recipient_hash == pii.recipient_hash(phone))
        )
        body = sorted(rows.all(), key=lambda m: m.created_at)[-1].body
    found = re.search(r"\b(\d{6})\b", body)
    assert found, body
    return found.group(1)


async def test_phone_sign_up_and_sms_login(client: httpx.AsyncClient, rt: Runtime):
    send = "mutation($p: String!, $k: SmsPurpose!) { sendSmsCode(phone: $p, purpose: $k) }"
    # given a code sent for registering
    assert (await gql(client, send, {"p": "13800138000", "k": "REGISTER"})).data["sendSmsCode"]
    code = await _last_code(rt, "+8613800138000")
    # a wrong code is refused and does not consume the right one
    wrong = "000000" if code != "000000" else "111111"
    bad = await gql(
        client,
        REGISTER,
        {"i": {"phone": "13800138000", "smsCode": wrong, "password": PASSWORD, "nickname": "p"}},
    )
    assert bad.code == "BAD_USER_INPUT" and bad.error["extensions"]["field"] == "smsCode"
    # when registering with it
    reg = await gql(
        client,
        REGISTER,
        {"i": {"phone": "13800138000", "smsCode": code, "password": PASSWORD, "nickname": "p"}},
    )
    assert reg.data["register"]["user"]["id"]
    # then the code is spent
    again = await gql(
        client,
        REGISTER,
        {"i": {"phone": "13800138001", "smsCode": code, "password": PASSWORD, "nickname": "p"}},
    )
    assert again.code == "BAD_USER_INPUT"
    # and the phone can sign in with a LOGIN code (rate limit: one code a minute per phone)
    await rt.backends.rate_limiter.reset("sms:phone-min:+8613800138000")
    assert (await gql(client, send, {"p": "+8613800138000", "k": "LOGIN"})).data
    login_code = await _last_code(rt, "+8613800138000")
    signed = await gql(
        client,
        "mutation($i: LoginInput!) { login(input: $i) { user { id } } }",
        {"i": {"phone": "13800138000", "smsCode": login_code}},
    )
    assert signed.data["login"]["user"]["id"] == reg.data["register"]["user"]["id"]


async def test_sms_codes_are_rate_limited_per_phone(client: httpx.AsyncClient):
    send = "mutation($p: String!) { sendSmsCode(phone: $p, purpose: REGISTER) }"
    assert (await gql(client, send, {"p": "13900139000"})).data
    limited = await gql(client, send, {"p": "13900139000"})
    assert limited.code == "RATE_LIMITED"
    assert limited.error["extensions"]["retryAfter"] >= 1


async def test_login_for_unknown_phone_sends_nothing(client: httpx.AsyncClient, rt: Runtime):
    send = "mutation($p: String!) { sendSmsCode(phone: $p, purpose: LOGIN) }"
    assert (await gql(client, send, {"p": "13700137000"})).data["sendSmsCode"] is True
    async with rt.db.read() as session:
        assert (await session.exec(select(SandboxMessage))).all() == []


async def test_wechat_login_creates_once_and_codes_are_single_use(client: httpx.AsyncClient):
    wx = "mutation($c: String!) { loginWithWechat(code: $c) { isNew user { id roles } } }"
    first = (await gql(client, wx, {"c": "lin.1"})).data["loginWithWechat"]
    second = (await gql(client, wx, {"c": "lin.2"})).data["loginWithWechat"]
    assert first["isNew"] is True and second["isNew"] is False
    assert first["user"]["id"] == second["user"]["id"]
    assert first["user"]["roles"] == ["CUSTOMER"]
    assert (await gql(client, wx, {"c": "lin.2"})).code == "INVALID_CREDENTIALS"


async def test_logout_ends_the_session(client: httpx.AsyncClient, rt: Runtime):
    await make_user(rt, "fay@example.com")
    signed = await login(client, "fay@example.com")
    out = await gql(
        client, "mutation($t: String!) { logout(refreshToken: $t) }", {"t": signed["refreshToken"]}
    )
    assert out.data["logout"] is True
    assert (await gql(client, ME, token=signed["accessToken"])).code == "UNAUTHENTICATED"
    assert (await gql(client, REFRESH, {"t": signed["refreshToken"]})).code == "UNAUTHENTICATED"


async def test_change_password_ends_other_sessions(client: httpx.AsyncClient, rt: Runtime):
    await make_user(rt, "gus@example.com")
    here = await login(client, "gus@example.com")
    elsewhere = await login(client, "gus@example.com")
    change = (
        "mutation($o: String!, $n: String!) { changePassword(oldPassword: $o, newPassword: $n) }"
    )
    wrong = await gql(
        client, change, {"o": "wrong-pass-1", "n": "new-pass-22"}, token=here["accessToken"]
    )
    assert wrong.code == "INVALID_CREDENTIALS"
    ok = await gql(client, change, {"o": PASSWORD, "n": "new-pass-22"}, token=here["accessToken"])
    assert ok.data["changePassword"] is True
    assert (await gql(client, ME, token=here["accessToken"])).data["me"]
    assert (await gql(client, ME, token=elsewhere["accessToken"])).code == "UNAUTHENTICATED"
    assert (await login(client, "gus@example.com", "new-pass-22"))["accessToken"]


async def test_update_profile(client: httpx.AsyncClient, rt: Runtime):
    user = await make_user(rt, "hal@example.com")
    token = await token_for(rt, user)
    update = "mutation($i: ProfileInput!) { updateProfile(input: $i) { nickname avatarUrl city gender } }"
    ok = await gql(
        client,
        update,
        {
            "i": {
                "nickname": "Hal 9000",
                "avatarUrl": "https://cdn.example.com/a.png",
                "city": "上海",
                "gender": 1,
            }
        },
        token=token,
    )
    assert ok.data["updateProfile"] == {
        "nickname": "Hal 9000",
        "avatarUrl": "https://cdn.example.com/a.png",
        "city": "上海",
        "gender": 1,
    }
    bad = await gql(client, update, {"i": {"avatarUrl": "javascript:alert(1)"}}, token=token)
    assert bad.code == "BAD_USER_INPUT" and bad.error["extensions"]["field"] == "avatarUrl"


async def test_tampered_and_foreign_tokens_are_refused(client: httpx.AsyncClient, rt: Runtime):
    user = await make_user(rt, "ivy@example.com")
    token = await token_for(rt, user)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}AA"
    assert (await gql(client, ME, token=tampered)).code == "UNAUTHENTICATED"
    assert (await gql(client, ME, headers={"authorization": "Basic abc"})).code == "UNAUTHENTICATED"
    assert (await gql(client, ME)).data["me"] is None
