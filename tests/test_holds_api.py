"""Holds through GraphQL: chosen seats, best available, general admission, releasing, the
sale window, limits, channel allocations, and live availability over a real WebSocket."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest

from boxoffice.clock import utcnow
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from tests.catalog_factories import (
    OPERATOR,
    make_event,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.conftest import LiveServer
from tests.helpers import gql, make_tenant, make_user, token_for
from tests.order_factories import on_sale
from tests.ws import graphql_ws

HOLD = """mutation Hold($i: CreateHoldInput!) {
  createHold(input: $i) { token sessionId quantity expiresAt total { amount currency }
    seats { id section row number label tierId } items { tierId tierName quantity unitPrice { amount } } } }"""
RELEASE = "mutation($t: String!) { releaseHold(token: $t) }"
AVAILABILITY = """query($s: ID!) { sessionAvailability(sessionId: $s) {
  version tiers { tierId available } seats { id status } } }"""


async def test_hold_chosen_seats_then_release(client: httpx.AsyncClient, rt: Runtime):
    # given a session on sale and a signed-in fan
    sale = await on_sale(rt)
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    # when the fan holds two chosen seats
    held = (
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "seatIds": sale.seat_ids[:2]}},
            token=fan,
        )
    ).data["createHold"]
    # then the hold has them, priced from the seated tier, for the hold TTL
    assert sorted(s["id"] for s in held["seats"]) == sorted(sale.seat_ids[:2])
    assert held["total"] == {"amount": "760.00", "currency": "CNY"}
    assert held["items"] == [
        {
            "tierId": sale.seated.id,
            "tierName": "Seated",
            "quantity": 2,
            "unitPrice": {"amount": "380.00"},
        }
    ]
    availability = (await gql(client, AVAILABILITY, {"s": sale.session.id})).data[
        "sessionAvailability"
    ]
    statuses = {s["id"]: s["status"] for s in availability["seats"]}
    assert [statuses[s] for s in sale.seat_ids[:3]] == ["HELD", "HELD", "AVAILABLE"]
    # and nobody else can take them
    rival = await token_for(rt, await make_user(rt, "rival@example.com"))
    taken = await gql(
        client,
        HOLD,
        {"i": {"sessionId": sale.session.id, "seatIds": sale.seat_ids[1:3]}},
        token=rival,
    )
    assert taken.code == "SEAT_UNAVAILABLE"
    assert taken.error["extensions"]["seats"] == [sale.seat_ids[1]]
    # a rival cannot release it; the holder can
    assert (await gql(client, RELEASE, {"t": held["token"]}, token=rival)).code == "HOLD_NOT_FOUND"
    assert (await gql(client, RELEASE, {"t": held["token"]}, token=fan)).data["releaseHold"] is True
    again = (
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "seatIds": sale.seat_ids[1:3]}},
            token=rival,
        )
    ).data
    assert again["createHold"]["quantity"] == 2
    assert (await gql(client, RELEASE, {"t": held["token"]}, token=fan)).code == "HOLD_NOT_FOUND"


async def test_best_available_and_general_admission(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt, ga_capacity=5)
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    best = (
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "tierId": sale.seated.id, "quantity": 3}},
            token=fan,
        )
    ).data["createHold"]
    rows = {(s["section"], s["row"]) for s in best["seats"]}
    assert len(rows) == 1  # together, in one row
    ga = (
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 5}},
            token=fan,
        )
    ).data["createHold"]
    assert ga["seats"] == []
    assert ga["total"]["amount"] == "900.00"
    other = await token_for(rt, await make_user(rt, "late@example.com"))
    gone = await gql(
        client,
        HOLD,
        {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}},
        token=other,
    )
    assert gone.code == "SOLD_OUT"
    assert gone.error["extensions"]["status"] == 5001


async def test_holds_need_an_open_sale_and_respect_limits(client: httpx.AsyncClient, rt: Runtime):
    tenant = await make_tenant(rt, "Club")
    venue = await make_venue(rt, tenant)
    event = await make_event(rt, tenant, venue)
    later = await make_session(rt, event, sale_starts_at=utcnow() + timedelta(days=1))
    tier = await make_tier(rt, later, capacity=50)
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    draft = await gql(
        client, HOLD, {"i": {"sessionId": later.id, "tierId": tier.id, "quantity": 1}}, token=fan
    )
    # a draft event's session does not exist for a customer (NOT_ON_SALE would confirm it)
    assert draft.code == "NOT_FOUND"
    assert draft.error["extensions"]["field"] == "sessionId"
    # the tenant's organizer sees the draft, and is told it is not on sale
    organizer = await token_for(rt, await make_user(rt, "org@example.com", Role.ORGANIZER, tenant))
    staff = await gql(
        client,
        HOLD,
        {"i": {"sessionId": later.id, "tierId": tier.id, "quantity": 1}},
        token=organizer,
    )
    assert staff.error["extensions"]["reason"] == "NOT_ON_SALE"
    await publish(rt, event)
    early = await gql(
        client, HOLD, {"i": {"sessionId": later.id, "tierId": tier.id, "quantity": 1}}, token=fan
    )
    assert early.error["extensions"]["reason"] == "SALE_NOT_STARTED"
    sale = await on_sale(rt, tenant=tenant)
    too_many = await gql(
        client,
        HOLD,
        {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 7}},
        token=fan,
    )
    assert too_many.code == "BAD_USER_INPUT"
    assert too_many.error["extensions"]["reason"] == "ORDER_LIMIT"
    both = await gql(
        client,
        HOLD,
        {
            "i": {
                "sessionId": sale.session.id,
                "tierId": sale.ga.id,
                "quantity": 1,
                "seatIds": sale.seat_ids[:1],
            }
        },
        token=fan,
    )
    assert both.code == "BAD_USER_INPUT"
    anonymous = await gql(
        client, HOLD, {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}}
    )
    assert anonymous.code == "UNAUTHENTICATED"
    missing = await gql(
        client, HOLD, {"i": {"sessionId": "nope", "tierId": sale.ga.id, "quantity": 1}}, token=fan
    )
    assert missing.code == "NOT_FOUND"


async def test_queue_enabled_sessions_need_a_queue_token(client: httpx.AsyncClient, rt: Runtime):
    from boxoffice.services import event_sessions

    sale = await on_sale(rt)
    await event_sessions.update_session(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=sale.session.id,
        queue_enabled=True,
    )
    fan_user = await make_user(rt, "fan@example.com")
    fan = await token_for(rt, fan_user)
    hold = {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}
    assert (await gql(client, HOLD, {"i": hold}, token=fan)).code == "QUEUE_TOKEN_REQUIRED"
    forged = await gql(client, HOLD, {"i": {**hold, "queueToken": "eyJ.forged.token"}}, token=fan)
    assert forged.code == "QUEUE_TOKEN_INVALID"
    issued = rt.queue_tokens.issue(user_id=fan_user.id, event_id=sale.event.id)
    ok = await gql(client, HOLD, {"i": {**hold, "queueToken": issued.token}}, token=fan)
    assert ok.data["createHold"]["quantity"] == 1
    replayed = await gql(client, HOLD, {"i": {**hold, "queueToken": issued.token}}, token=fan)
    assert replayed.code == "QUEUE_TOKEN_INVALID"
    assert replayed.error["extensions"]["reason"] == "REPLAYED"


async def test_channel_allocation_is_kept_from_the_public(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt, ga_capacity=10)
    agent_user = await make_user(rt, "agent@example.com", Role.AGENT)
    agent = await token_for(rt, agent_user)
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    allocate = """mutation($s: ID!, $t: ID!, $c: String!, $q: Int!) {
      allocateChannelQuota(sessionId: $s, tierId: $t, channel: $c, quantity: $q) { channel quantity } }"""
    refused = await gql(
        client, allocate, {"s": sale.session.id, "t": sale.ga.id, "c": "ctrip", "q": 6}, token=fan
    )
    assert refused.code == "FORBIDDEN"
    done = await gql(
        client, allocate, {"s": sale.session.id, "t": sale.ga.id, "c": "ctrip", "q": 6}, token=agent
    )
    assert done.data["allocateChannelQuota"] == {"channel": "ctrip", "quantity": 6}
    public = await gql(
        client,
        HOLD,
        {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 5}},
        token=fan,
    )
    assert public.code == "SOLD_OUT"
    assert public.error["extensions"]["available"] == 4
    channel = await gql(
        client,
        HOLD,
        {
            "i": {
                "sessionId": sale.session.id,
                "tierId": sale.ga.id,
                "quantity": 6,
                "channel": "ctrip",
            }
        },
        token=agent,
    )
    assert channel.data["createHold"]["quantity"] == 6
    unknown = await gql(
        client,
        HOLD,
        {
            "i": {
                "sessionId": sale.session.id,
                "tierId": sale.ga.id,
                "quantity": 1,
                "channel": "other",
            }
        },
        token=agent,
    )
    assert unknown.code == "BAD_USER_INPUT"
    too_much = await gql(
        client,
        allocate,
        {"s": sale.session.id, "t": sale.ga.id, "c": "fliggy", "q": 5},
        token=agent,
    )
    assert too_much.code == "SOLD_OUT"


async def test_seat_availability_subscription_snapshot_then_changes(
    live_server: LiveServer, client: httpx.AsyncClient, rt: Runtime
):
    sale = await on_sale(rt)
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    query = """subscription($s: ID!) { seatAvailability(sessionId: $s) {
      version previousVersion snapshot tiers { tierId available } seats { id status } compact } }"""
    async with graphql_ws(live_server.ws_url) as ws:
        await ws.init()  # public: no token
        op = await ws.subscribe(query, {"s": sale.session.id})
        first = (await ws.next_payload(op))["data"]["seatAvailability"]
        assert first["snapshot"] is True
        assert len(first["seats"]) == len(sale.seat_ids)
        assert first["compact"]["legend"] == ["AVAILABLE", "HELD", "SOLD", "BLOCKED"]
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "seatIds": sale.seat_ids[:1]}},
            token=fan,
        )
        change = (await ws.next_payload(op))["data"]["seatAvailability"]
        assert change["snapshot"] is False
        assert change["previousVersion"] <= first["version"] < change["version"]
        assert change["seats"] == [{"id": sale.seat_ids[0], "status": "HELD"}]
        assert {t["tierId"]: t["available"] for t in change["tiers"]} == {
            sale.seated.id: len(sale.seat_ids) - 1
        }


async def test_sold_out_is_answered_without_the_ledger(client: httpx.AsyncClient, rt: Runtime):
    sale = await on_sale(rt, ga_capacity=2)
    fan = await token_for(rt, await make_user(rt, "fan@example.com"))
    await gql(
        client,
        HOLD,
        {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 2}},
        token=fan,
    )
    late = await token_for(rt, await make_user(rt, "late@example.com"))
    assert (
        await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}},
            token=late,
        )
    ).code == "SOLD_OUT"
    # the process now knows the tier is sold out (flag, kept current by the stream)
    for _ in range(100):
        if rt.sold_out.is_sold_out(sale.session.id, sale.ga.id):
            break
        await asyncio.sleep(0.01)
    assert rt.sold_out.is_sold_out(sale.session.id, sale.ga.id)
    calls = 0
    original = rt.backends.ledger.hold

    async def counting(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    rt.backends.ledger.hold = counting  # type: ignore[method-assign]
    try:
        again = await gql(
            client,
            HOLD,
            {"i": {"sessionId": sale.session.id, "tierId": sale.ga.id, "quantity": 1}},
            token=late,
        )
    finally:
        rt.backends.ledger.hold = original  # type: ignore[method-assign]
    assert again.code == "SOLD_OUT"
    assert calls == 0


@pytest.mark.parametrize("backend", ["embedded"])
async def test_rebuild_inventory_command(rt: Runtime, tmp_path):  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    sale = await on_sale(rt)
    env = {
        **os.environ,
        "BOXOFFICE_DATABASE_URL": rt.settings.database_url,
        "BOXOFFICE_DATA_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "boxoffice", "rebuild-inventory", sale.session.id],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"rebuilt {sale.session.id}" in done.stdout
