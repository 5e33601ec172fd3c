"""Rate limits per operation and per object, not only per request: holds per user per session,
orders per user, any mutation per caller (aliases count one by one), failed sign-ins per
account, SMS codes per phone; and the one table that configures them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from boxoffice.app import create_app
from boxoffice.errors import ConfigurationError
from boxoffice.runtime import Runtime
from boxoffice.services.operation_limits import DEFAULT_LIMITS
from tests.conftest import settings_for
from tests.helpers import PASSWORD, gql, make_user, token_for
from tests.order_factories import on_sale

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }"
RELEASE = "mutation($t: String!) { releaseHold(token: $t) }"
ORDER = "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id } }"
LOGIN = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }"
REFUND = "mutation($o: ID!) { requestRefund(orderId: $o) { id } }"
JOIN_WAITLIST = (
    "mutation($s: ID!, $t: ID!) { joinWaitlist(sessionId: $s, tierId: $t, quantity: 1) { id } }"
)


async def test_holds_are_limited_per_user_per_session(client: httpx.AsyncClient, rt: Runtime):
    # given two sessions on sale and two customers
    first, second = await on_sale(rt), await on_sale(rt)
    fan, other = await make_user(rt, "fan@example.com"), await make_user(rt, "o@example.com")
    fan_token, other_token = await token_for(rt, fan), await token_for(rt, other)
    limit = DEFAULT_LIMITS["createHold"].limit

    def hold_in(sale_id: str, tier_id: str) -> dict[str, object]:
        return {"i": {"sessionId": sale_id, "tierId": tier_id, "quantity": 1}}

    # when the fan holds and releases one seat over and over in the first session
    for _ in range(limit):
        held = await gql(client, HOLD, hold_in(first.session.id, first.ga.id), token=fan_token)
        await gql(client, RELEASE, {"t": held.data["createHold"]["token"]}, token=fan_token)
    refused = await gql(client, HOLD, hold_in(first.session.id, first.ga.id), token=fan_token)
    # then the next hold there is refused, with when to come back
    assert refused.code == "RATE_LIMITED"
    assert 1 <= refused.error["extensions"]["retryAfter"] <= 60
    # and the fan may still hold in another session, and others in this one
    assert (await gql(client, HOLD, hold_in(second.session.id, second.ga.id), token=fan_token)).data
    assert (await gql(client, HOLD, hold_in(first.session.id, first.ga.id), token=other_token)).data


async def test_orders_are_limited_per_user(client: httpx.AsyncClient, rt: Runtime):
    # given a customer firing orders (even ones that fail count)
    fan = await make_user(rt, "orders@example.com")
    token = await token_for(rt, fan)
    limit = DEFAULT_LIMITS["createOrder"].limit
    answers = [
        (
            await gql(
                client, ORDER, {"i": {"holdToken": f"h{i}", "idempotencyKey": f"k{i}"}}, token=token
            )
        ).code
        for i in range(limit + 1)
    ]
    # then each is answered on its merits until the limit, then refused
    assert answers[:limit] == ["HOLD_NOT_FOUND"] * limit
    assert answers[limit] == "RATE_LIMITED"


@pytest.mark.parametrize(
    ("operation", "document", "variables"),
    [
        ("requestRefund", REFUND, {"o": "01NOSUCHORDER"}),
        ("joinWaitlist", JOIN_WAITLIST, {"s": "01NOSUCHSESSION", "t": "01NOSUCHTIER"}),
    ],
    ids=["requestRefund", "joinWaitlist"],
)
async def test_refund_requests_and_waitlist_joins_are_limited_per_user(
    client: httpx.AsyncClient,
    rt: Runtime,
    operation: str,
    document: str,
    variables: dict[str, object],
):
    # given a customer firing refund requests or waitlist joins (even ones that fail count)
    fan, other = await make_user(rt, "fan@example.com"), await make_user(rt, "o@example.com")
    token = await token_for(rt, fan)
    limit = DEFAULT_LIMITS[operation].limit
    assert limit < DEFAULT_LIMITS["*"].limit  # tighter than the fence around every mutation
    answers = [await gql(client, document, variables, token=token) for _ in range(limit + 1)]
    # then each is answered on its merits until the limit, then refused with when to come back
    assert [a.code for a in answers[:limit]] == ["NOT_FOUND"] * limit
    assert answers[limit].code == "RATE_LIMITED"
    assert 1 <= answers[limit].error["extensions"]["retryAfter"] <= 60
    # and another customer is still answered on the merits
    assert (await gql(client, document, variables, token=await token_for(rt, other))).code == (
        "NOT_FOUND"
    )


@pytest.mark.parametrize("backend", ["embedded"])
async def test_every_mutation_counts_each_alias(client: httpx.AsyncClient):
    # given an anonymous client batching a mutation through aliases (30 per request)
    limit = DEFAULT_LIMITS["*"].limit
    query = (
        "mutation { " + " ".join(f'l{i}: logout(refreshToken: "x{i}")' for i in range(30)) + " }"
    )
    # when it sends more aliased calls than the per-caller limit allows
    results = [await gql(client, query) for _ in range(limit // 30 + 1)]
    # then each aliased call counted: the request past the limit is refused
    assert [r.code for r in results[:-1]] == [None] * (limit // 30)
    assert results[-1].code == "RATE_LIMITED"
    # and another client is not affected
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client._transport.app, client=("198.51.100.9", 1)),  # type: ignore[attr-defined]
        base_url="http://testserver",
    )
    async with other:
        assert (await gql(other, 'mutation { logout(refreshToken: "y") }')).code is None


@pytest.mark.parametrize("backend", ["embedded"])
@pytest.mark.settings(operation_limits='{"createHold": [2, 60], "me": [3, 60]}')
async def test_the_table_is_configurable(client: httpx.AsyncClient, rt: Runtime):
    # given createHold overridden to 2 per user (not per session) and the `me` query limited
    first, second = await on_sale(rt), await on_sale(rt)
    fan = await make_user(rt, "conf@example.com")
    token = await token_for(rt, fan)
    codes = []
    for sale in (first, second, second):
        hold = {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}}
        codes.append((await gql(client, HOLD, hold, token=token)).code)
    assert codes == [None, None, "RATE_LIMITED"]
    me = [(await gql(client, "{ me { id } }", token=token)).code for _ in range(4)]
    assert me == [None, None, None, "RATE_LIMITED"]


@pytest.mark.parametrize("raw", ["[1, 2]", '{"createHold": 5}', '{"createHold": [0, 60]}', "{"])
def test_a_malformed_table_stops_the_start(tmp_path: Path, raw: str):
    with pytest.raises(ConfigurationError, match="BOXOFFICE_OPERATION_LIMITS"):
        create_app(settings_for(tmp_path, operation_limits=raw))


async def test_failed_sign_ins_pause_the_account(client: httpx.AsyncClient, rt: Runtime):
    # given an account someone guesses passwords for
    await make_user(rt, "target@example.com")
    wrong = {"i": {"email": "target@example.com", "password": "guess-123456"}}
    answers = [(await gql(client, LOGIN, wrong)).code for _ in range(10)]
    assert set(answers) == {"INVALID_CREDENTIALS"}
    # when even the right password comes next
    right = await gql(client, LOGIN, {"i": {"email": "target@example.com", "password": PASSWORD}})
    # then the account is paused for a while
    assert right.code == "RATE_LIMITED"
    assert right.error["extensions"]["retryAfter"] >= 60


async def test_sms_codes_are_limited_per_phone_whoever_asks(client: httpx.AsyncClient, app: object):
    # given one client asking a code for a phone
    send = "mutation($p: String!) { sendSmsCode(phone: $p, purpose: REGISTER) }"
    assert (await gql(client, send, {"p": "13900139001"})).data
    # when a client from another address asks for the same phone
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("198.51.100.10", 1)),  # type: ignore[arg-type]
        base_url="http://testserver",
    )
    async with other:
        limited = await gql(other, send, {"p": "13900139001"})
        # then it is refused (the limit is the phone's), but another phone is fine
        assert limited.code == "RATE_LIMITED"
        assert (await gql(other, send, {"p": "13900139002"})).data
