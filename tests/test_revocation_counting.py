"""The rate-limit hit counted in the revocation markers' round trip (``revocation.check`` with
``hit``): counted exactly when the markers let the token through at once, never for a token
they refuse or that still needs the epoch set or the database asked; and the same limits seen
through GraphQL either way."""

from __future__ import annotations

import time

import httpx
import pytest

from boxoffice.errors import AccountFrozen, Unauthenticated
from boxoffice.runtime import Runtime
from boxoffice.services import revocation
from boxoffice.services.access_tokens import AccessClaims
from tests.helpers import gql, make_user, token_for
from tests.order_factories import on_sale

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }"


def _claims(*, issued_at: int, version: int = 1, session_id: str = "sid-1") -> AccessClaims:
    return AccessClaims(
        user_id="u-1",
        session_id=session_id,
        token_id="t-1",
        issued_at=issued_at,
        expires_at=issued_at + 900,
        version=version,
        roles=frozenset(),
        tenant_roles={},
    )


async def _counter(rt: Runtime, key: str) -> int:
    assert rt.backends.redis is not None
    full_key = rt.backends.rate_limiter.full_key(key)  # type: ignore[attr-defined]
    return int(await rt.backends.redis.get(full_key) or 0)


@pytest.mark.parametrize("backend", ["pg_redis"], indirect=True)
async def test_the_hit_is_counted_only_when_the_markers_let_the_token_through(rt: Runtime):
    codes, limiter = rt.backends.codes, rt.backends.rate_limiter
    epoch = int(time.time()) - 100
    await codes.put(revocation.EPOCH_KEY, str(epoch), ttl_seconds=60)
    hit = revocation.Hit(limiter, "op:test:u:u-1", limit=2, window_seconds=60)
    fresh = _claims(issued_at=epoch + 1)

    first = await revocation.check(codes, fresh, db=rt.db, hit=hit)
    second = await revocation.check(codes, fresh, db=rt.db, hit=hit)
    third = await revocation.check(codes, fresh, db=rt.db, hit=hit)
    assert first is not None and first.allowed and first.count == 1
    assert second is not None and second.allowed and second.count == 2
    assert third is not None and not third.allowed and 0 < third.retry_after <= 60
    assert await _counter(rt, hit.key) == 3

    # refused tokens count nothing: an older version, a frozen user, an ended sign-in
    await revocation.revoke_user(codes, "u-1", frozen=False, version=2, ttl_seconds=60)
    with pytest.raises(Unauthenticated):
        await revocation.check(codes, fresh, db=rt.db, hit=hit)
    assert await revocation.check(codes, _claims(issued_at=epoch + 1, version=2), hit=hit)
    assert await _counter(rt, hit.key) == 4  # the current version still counts
    await revocation.revoke_user(codes, "u-1", frozen=True, version=2, ttl_seconds=60)
    with pytest.raises(AccountFrozen):
        await revocation.check(codes, fresh, db=rt.db, hit=hit)
    await codes.delete("rv:u:u-1")
    await revocation.revoke_session(codes, "sid-1", ttl_seconds=60)
    with pytest.raises(Unauthenticated):
        await revocation.check(codes, fresh, db=rt.db, hit=hit)
    assert await _counter(rt, hit.key) == 4

    # a token from before the epoch with no "checked" marker needs the database: not counted
    # here (the caller counts after), and without a session marker the keys are one fewer
    old = _claims(issued_at=epoch - 5, session_id="")
    assert await revocation.check(codes, old, hit=hit) is None
    assert await _counter(rt, hit.key) == 4
    # no epoch: it is set, nothing counted
    await codes.delete(revocation.EPOCH_KEY)
    assert (
        await revocation.check(codes, _claims(issued_at=epoch + 1, session_id=""), hit=hit) is None
    )
    assert await codes.get(revocation.EPOCH_KEY) is not None
    assert await _counter(rt, hit.key) == 4


async def test_without_a_shared_redis_nothing_is_counted_along(rt: Runtime):
    if rt.backends.fast is not None:
        pytest.skip("the embedded stores have no script to share")
    hit = revocation.Hit(rt.backends.rate_limiter, "op:test:u:u-1", limit=2, window_seconds=60)
    claims = _claims(issued_at=int(time.time()))
    assert await revocation.check(rt.backends.codes, claims, hit=hit) is None


@pytest.mark.parametrize("backend", ["pg_redis"], indirect=True)
async def test_a_refused_token_counts_under_the_ip_and_a_good_one_under_the_user(
    client: httpx.AsyncClient, rt: Runtime
):
    sale = await on_sale(rt)
    fan = await make_user(rt, "fan@example.com")
    token = await token_for(rt, fan)
    hold = {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}}
    user_key = f"op:createHold:u:{fan.id}:{sale.session.id}"
    ip_key = f"op:createHold:ip:203.0.113.7:{sale.session.id}"
    # the first request asks the database (the token predates the store's epoch), the
    # second is counted along with the markers: both under the user
    for _ in range(2):
        assert (await gql(client, HOLD, hold, token=token)).data
    assert await _counter(rt, user_key) == 2
    # once the sign-in ended, its token is refused and counted under the IP, as before
    await revocation.revoke_session(rt.backends.codes, "test-session-" + fan.id, ttl_seconds=60)
    refused = await gql(client, HOLD, hold, token=token)
    assert refused.code == "UNAUTHENTICATED"
    assert refused.error["extensions"]["reason"] == "TOKEN_REVOKED"
    assert await _counter(rt, user_key) == 2
    assert await _counter(rt, ip_key) == 1
