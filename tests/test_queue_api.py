"""The waiting room through GraphQL: joining and its refusals, status, leaving, the rate, the
blacklist, and queue tokens at createHold."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlmodel import col, select

from boxoffice.backends.codes import CodeStore
from boxoffice.clock import utcnow
from boxoffice.models.events import EventSession
from boxoffice.models.identity import AuditEntry, Role
from boxoffice.runtime import Runtime
from boxoffice.services import inventory, waiting_room
from tests.catalog_factories import OPERATOR
from tests.helpers import gql, make_tenant, make_user, token_for, until, viewer_for
from tests.order_factories import hold_for
from tests.queue_factories import (
    HOLD,
    JOIN,
    STATUS,
    Clock,
    catalog_ticker,
    customers,
    queue_sale,
)

LEAVE = "mutation($e: ID!) { leaveQueue(eventId: $e) }"
SET_RATE = """mutation($e: ID!, $r: Int) { setQueueRate(eventId: $e, admitPerSecond: $r) {
  id sessions { queueAdmitPerSecond } } }"""
ADD = """mutation($i: AddToBlacklistInput!) { addToBlacklist(input: $i) {
  id kind value reason createdBy createdAt } }"""
REMOVE = "mutation($id: ID!) { removeFromBlacklist(id: $id) }"
LIST = "query($k: BlacklistKind) { blacklist(kind: $k) { id kind value } }"
RELEASE = "mutation($t: String!) { releaseHold(token: $t) }"
AVAILABLE = """query($s: ID!) { session(id: $s) { tiers { id available } } }"""


async def open_line(rt: Runtime) -> Clock:
    """Tick once, so the lines of events on sale are open."""
    clock = Clock(time.time())
    ticker, _catalog = catalog_ticker(rt, clock)
    await ticker.tick()
    return clock


async def admit_all(rt: Runtime, clock: Clock) -> None:
    ticker, _catalog = catalog_ticker(rt, clock)
    clock.now += 1
    await ticker.tick()


async def test_joining_twice_keeps_one_place(client: httpx.AsyncClient, rt: Runtime):
    # given an open line with two customers in it
    sale = await queue_sale(rt)
    await open_line(rt)
    (first, first_token), (_second, second_token) = await customers(rt, 2)
    joined = await gql(client, JOIN, {"e": sale.event.id, "d": "phone-1"}, token=first_token)
    await gql(client, JOIN, {"e": sale.event.id, "d": "phone-2"}, token=second_token)
    # when the first joins again
    again = await gql(client, JOIN, {"e": sale.event.id, "d": "phone-1"}, token=first_token)
    # then it keeps its place: same ticket, one entry each
    assert again.data == joined.data
    assert joined.data["joinQueue"] == {
        "eventId": sale.event.id,
        "status": "WAITING",
        "position": 1,
        "ahead": 0,
        "estimatedWaitSeconds": 0,
        "queueToken": None,
        "expiresAt": None,
    }
    assert (await rt.backends.waiting_room.snapshot(sale.event.id)).waiting == 2
    status = await gql(client, STATUS, {"e": sale.event.id}, token=first_token)
    assert status.data["queueStatus"] == joined.data["joinQueue"]
    assert first.id


async def test_join_refusals(client: httpx.AsyncClient, rt: Runtime):
    # given events of every kind and a customer
    sale = await queue_sale(rt)
    draft = await queue_sale(rt, title="Draft", published=False)
    plain = await queue_sale(rt, title="Plain")
    async with rt.db.write() as session:
        row = await session.get(EventSession, plain.session.id)
        assert row is not None
        row.queue_enabled = False
        session.add(row)
    await rt.catalog_cache.invalidate(event_ids=[plain.event.id])
    ((_user, token),) = await customers(rt, 1)

    async def join(event_id: str, **kw: Any) -> Any:
        return await gql(client, JOIN, {"e": event_id, "d": "dev"}, **kw)

    # then: anonymous, unknown, draft, no queue session
    assert (await join(sale.event.id)).code == "UNAUTHENTICATED"
    assert (await join("no-such-event", token=token)).code == "NOT_FOUND"
    assert (await join(draft.event.id, token=token)).code == "NOT_FOUND"
    no_queue = await join(plain.event.id, token=token)
    assert no_queue.code == "BAD_USER_INPUT"
    assert no_queue.error["extensions"]["field"] == "eventId"
    assert no_queue.error["extensions"]["reason"] == "QUEUE_NOT_ENABLED"
    too_long = await gql(client, JOIN, {"e": sale.event.id, "d": "x" * 200}, token=token)
    assert too_long.error["extensions"]["field"] == "deviceId"
    # and nobody was placed in any line
    assert (await rt.backends.waiting_room.snapshot(sale.event.id)).pre_queue == 0
    assert (await rt.backends.waiting_room.snapshot(sale.event.id)).waiting == 0


async def test_a_frozen_user_cannot_join(client: httpx.AsyncClient, rt: Runtime):
    sale = await queue_sale(rt)
    customer = await make_user(rt, "frozen@example.com")
    operator = await make_user(rt, "op@example.com", Role.OPERATOR)
    token = await token_for(rt, customer)
    frozen = await gql(
        client,
        "mutation($u: ID!) { freezeUser(userId: $u) { status } }",
        {"u": customer.id},
        token=await token_for(rt, operator),
    )
    assert frozen.data["freezeUser"]["status"] == "FROZEN"
    assert (await gql(client, JOIN, {"e": sale.event.id}, token=token)).code == "ACCOUNT_FROZEN"
    assert await rt.backends.waiting_room.status(sale.event.id, customer.id) is None


async def test_the_blacklist_through_the_api(client: httpx.AsyncClient, rt: Runtime):
    # given an operator, a customer, and a queue event
    sale = await queue_sale(rt)
    await open_line(rt)
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    (_bot, bot_token), (_other, other_token) = await customers(rt, 2)
    # when the operator blacklists a device
    added = await gql(
        client,
        ADD,
        {"i": {"kind": "DEVICE", "value": " bot-phone ", "reason": "scalper farm"}},
        token=operator,
    )
    entry = added.data["addToBlacklist"]
    assert (entry["kind"], entry["value"], entry["reason"]) == (
        "DEVICE",
        "bot-phone",
        "scalper farm",
    )
    # then that device is refused, whoever uses it, and nobody was placed
    refused = await gql(client, JOIN, {"e": sale.event.id, "d": "bot-phone"}, token=bot_token)
    assert refused.code == "FORBIDDEN" and refused.error["extensions"]["reason"] == "BLACKLISTED"
    other = await gql(client, JOIN, {"e": sale.event.id, "d": "bot-phone"}, token=other_token)
    assert other.code == "FORBIDDEN"
    assert (await rt.backends.waiting_room.snapshot(sale.event.id)).waiting == 0
    # and customers may neither read nor change the list
    assert (await gql(client, LIST, token=bot_token)).code == "FORBIDDEN"
    customer_add = await gql(
        client, ADD, {"i": {"kind": "IP", "value": "192.0.2.1"}}, token=bot_token
    )
    assert customer_add.code == "FORBIDDEN"
    bad_ip = await gql(client, ADD, {"i": {"kind": "IP", "value": "not-an-ip"}}, token=operator)
    assert bad_ip.code == "BAD_USER_INPUT" and bad_ip.error["extensions"]["field"] == "value"
    listed = await gql(client, LIST, {"k": "DEVICE"}, token=operator)
    assert listed.data["blacklist"] == [{"id": entry["id"], "kind": "DEVICE", "value": "bot-phone"}]
    # when the operator lifts it, the device gets in
    assert (await gql(client, REMOVE, {"id": entry["id"]}, token=operator)).data == {
        "removeFromBlacklist": True
    }
    back = await gql(client, JOIN, {"e": sale.event.id, "d": "bot-phone"}, token=bot_token)
    assert back.data["joinQueue"]["position"] == 1
    assert (await gql(client, REMOVE, {"id": entry["id"]}, token=operator)).code == "NOT_FOUND"


async def test_joins_are_rate_limited(
    client: httpx.AsyncClient, rt: Runtime, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(waiting_room, "USER_LIMIT", ("queue:join:user", 3, 60.0))
    sale = await queue_sale(rt)
    ((_user, token),) = await customers(rt, 1)
    answers = [
        (await gql(client, JOIN, {"e": sale.event.id, "d": "d1"}, token=token)).code
        for _ in range(4)
    ]
    assert answers == [None, None, None, "RATE_LIMITED"]


async def test_status_admission_and_leaving(client: httpx.AsyncClient, rt: Runtime):
    # given, before the sale opens, two customers in line
    sale = await queue_sale(rt, sale_starts_at=utcnow() + timedelta(minutes=5))
    (_a, a_token), (_b, b_token) = await customers(rt, 2)
    early = await gql(client, JOIN, {"e": sale.event.id, "d": "a"}, token=a_token)
    await gql(client, JOIN, {"e": sale.event.id, "d": "b"}, token=b_token)
    # then their order is not drawn yet, and a stranger is not in line
    assert (early.data["joinQueue"]["status"], early.data["joinQueue"]["position"]) == (
        "WAITING",
        None,
    )
    ((_c, c_token),) = await customers(rt, 1, prefix="stranger")
    assert (await gql(client, STATUS, {"e": sale.event.id}, token=c_token)).data == {
        "queueStatus": None
    }
    # when the sale opens and one is let in per second
    clock = Clock(sale.session.sale_starts_at.timestamp())
    ticker, _catalog = catalog_ticker(rt, clock)
    await gql(
        client,
        SET_RATE,
        {"e": sale.event.id, "r": 1},
        token=await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR)),
    )
    (report,) = await ticker.tick()
    assert len(report.admitted) == 1
    (first, _seq), *_ = report.admitted
    tokens = {_a.id: a_token, _b.id: b_token}
    admitted_token = tokens.pop(first)
    (waiting_token,) = tokens.values()
    # then the admitted one has a queue token, the other is next
    admitted = (await gql(client, STATUS, {"e": sale.event.id}, token=admitted_token)).data
    assert admitted["queueStatus"]["status"] == "ADMITTED"
    assert admitted["queueStatus"]["queueToken"] and admitted["queueStatus"]["expiresAt"]
    waiting = (await gql(client, STATUS, {"e": sale.event.id}, token=waiting_token)).data
    assert (waiting["queueStatus"]["position"], waiting["queueStatus"]["queueToken"]) == (1, None)
    # when both try to leave, only the waiting one can
    assert (await gql(client, LEAVE, {"e": sale.event.id}, token=admitted_token)).data == {
        "leaveQueue": False
    }
    assert (await gql(client, LEAVE, {"e": sale.event.id}, token=waiting_token)).data == {
        "leaveQueue": True
    }
    assert (await gql(client, STATUS, {"e": sale.event.id}, token=waiting_token)).data == {
        "queueStatus": None
    }


async def test_a_sold_out_line_answers_sold_out(client: httpx.AsyncClient, rt: Runtime):
    sale = await queue_sale(rt)
    await open_line(rt)
    await rt.backends.waiting_room.close(sale.event.id)
    ((_user, token),) = await customers(rt, 1)
    assert (await gql(client, JOIN, {"e": sale.event.id, "d": "d"}, token=token)).code == (
        "SOLD_OUT"
    )


async def test_organizers_set_the_rate_of_their_events(client: httpx.AsyncClient, rt: Runtime):
    # given an event with two sessions and organizers of its tenant and of another
    sale = await queue_sale(rt)
    organizer = await token_for(
        rt, await make_user(rt, "org@example.com", Role.ORGANIZER, sale.tenant)
    )
    rival_tenant = await make_tenant(rt, "Rival")
    rival = await token_for(
        rt, await make_user(rt, "rival@example.com", Role.ORGANIZER, rival_tenant)
    )
    ((_fan, fan),) = await customers(rt, 1)
    before = await rt.queue_events.get(sale.event.id, viewer=OPERATOR)
    assert before.admit_per_second(rt.settings.queue_admit_per_second) == 50
    # when its organizer sets 120 per second
    done = await gql(client, SET_RATE, {"e": sale.event.id, "r": 120}, token=organizer)
    # then every session has it, the waiting room uses it at once, and it is audited
    assert done.data["setQueueRate"]["sessions"] == [{"queueAdmitPerSecond": 120}]
    after = await rt.queue_events.get(sale.event.id, viewer=OPERATOR)
    assert after.admit_per_second(rt.settings.queue_admit_per_second) == 120
    _ticker, catalog = catalog_ticker(rt, Clock(time.time()))
    assert [s.admit_per_second for s in await catalog()] == [120]
    async with rt.db.read() as session:
        audited = (
            await session.exec(
                select(AuditEntry).where(col(AuditEntry.target_id) == sale.session.id)
            )
        ).all()
    assert any(a.after and a.after.get("queue_admit_per_second") == 120 for a in audited), audited
    # and others cannot; bad rates name the field; null returns to the default
    assert (await gql(client, SET_RATE, {"e": sale.event.id, "r": 5}, token=rival)).code == (
        "NOT_FOUND"
    )
    assert (await gql(client, SET_RATE, {"e": sale.event.id, "r": 5}, token=fan)).code == (
        "FORBIDDEN"
    )
    zero = await gql(client, SET_RATE, {"e": sale.event.id, "r": 0}, token=organizer)
    assert zero.code == "BAD_USER_INPUT" and zero.error["extensions"]["field"] == "admitPerSecond"
    cleared = await gql(client, SET_RATE, {"e": sale.event.id, "r": None}, token=organizer)
    assert cleared.data["setQueueRate"]["sessions"] == [{"queueAdmitPerSecond": None}]
    assert [s.admit_per_second for s in await catalog()] == [rt.settings.queue_admit_per_second]


# -- queue tokens at createHold --------------------------------------------------------------


async def available(client: httpx.AsyncClient, session_id: str) -> int:
    result = await gql(client, AVAILABLE, {"s": session_id})
    (tier,) = result.data["session"]["tiers"]
    return int(tier["available"])


async def test_create_hold_refuses_every_bad_queue_token(client: httpx.AsyncClient, rt: Runtime):
    # given a queue session, another queue event, and an admitted customer with a token
    sale = await queue_sale(rt)
    other = await queue_sale(rt, title="Other Show")
    clock = await open_line(rt)
    (fan, fan_token), (_rival, rival_token) = await customers(rt, 2)
    await gql(client, JOIN, {"e": sale.event.id, "d": "fan"}, token=fan_token)
    await admit_all(rt, clock)
    status = await gql(client, STATUS, {"e": sale.event.id}, token=fan_token)
    good = status.data["queueStatus"]["queueToken"]
    assert good

    def hold(queue_token: str | None, who: str = fan_token) -> Any:
        item = {"sessionId": sale.session.id, "tierId": sale.tier.id, "quantity": 1}
        if queue_token is not None:
            item["queueToken"] = queue_token
        return gql(client, HOLD, {"i": item}, token=who)

    def refused(result: Any) -> tuple[str | None, str | None]:
        return result.code, result.error["extensions"].get("reason")

    before = await available(client, sale.session.id)
    # then no token: QUEUE_TOKEN_REQUIRED
    assert (await hold(None)).code == "QUEUE_TOKEN_REQUIRED"
    # forged: garbage, a token signed with another key, an access token
    assert refused(await hold("not-a-token")) == ("QUEUE_TOKEN_INVALID", "FORGED")
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256")
    assert refused(await hold(forged)) == ("QUEUE_TOKEN_INVALID", "FORGED")
    assert refused(await hold(fan_token)) == ("QUEUE_TOKEN_INVALID", "FORGED")
    # expired
    expired = rt.queue_tokens.issue(user_id=fan.id, event_id=sale.event.id, now=time.time() - 600)
    assert refused(await hold(expired.token)) == ("QUEUE_TOKEN_INVALID", "EXPIRED")
    # for another event
    elsewhere = rt.queue_tokens.issue(user_id=fan.id, event_id=other.event.id)
    assert refused(await hold(elsewhere.token)) == ("QUEUE_TOKEN_INVALID", "WRONG_EVENT")
    # someone else's
    assert refused(await hold(good, who=rival_token)) == ("QUEUE_TOKEN_INVALID", "WRONG_USER")
    # and none of these held anything
    assert await available(client, sale.session.id) == before
    # when the good token is used, it holds once; replayed, it is refused
    held = await hold(good)
    assert held.data["createHold"]["sessionId"] == sale.session.id
    assert refused(await hold(good)) == ("QUEUE_TOKEN_INVALID", "REPLAYED")
    assert await available(client, sale.session.id) == before - 1


@pytest.mark.settings(operation_limits='{"createHold": [100, 60]}')  # not the hold rate limit
async def test_one_token_used_at_once_by_many_requests_holds_once(
    client: httpx.AsyncClient, rt: Runtime
):
    # given an admitted customer's token
    sale = await queue_sale(rt)
    ((fan, fan_token),) = await customers(rt, 1)
    token = rt.queue_tokens.issue(user_id=fan.id, event_id=sale.event.id).token
    before = await available(client, sale.session.id)
    item = {"sessionId": sale.session.id, "tierId": sale.tier.id, "quantity": 1}
    # when twenty requests race with it
    results = await asyncio.gather(
        *(
            gql(client, HOLD, {"i": {**item, "queueToken": token}}, token=fan_token)
            for _ in range(20)
        )
    )
    # then exactly one holds; the others are refused as replays and left nothing held
    held = [r for r in results if not r.errors]
    assert len(held) == 1
    assert {(r.code, r.error["extensions"].get("reason")) for r in results if r.errors} == {
        ("QUEUE_TOKEN_INVALID", "REPLAYED")
    }
    assert await available(client, sale.session.id) == before - 1


async def test_a_hold_that_fails_leaves_its_token_usable(client: httpx.AsyncClient, rt: Runtime):
    # given a queue session with one ticket left, taken by a rival's hold
    sale = await queue_sale(rt, capacity=1)
    (fan, fan_token), (rival, rival_token) = await customers(rt, 2)
    item = {"sessionId": sale.session.id, "tierId": sale.tier.id, "quantity": 1}

    def token_of(user: Any) -> str:
        return rt.queue_tokens.issue(user_id=user.id, event_id=sale.event.id).token

    taken = await gql(
        client, HOLD, {"i": {**item, "queueToken": token_of(rival)}}, token=rival_token
    )
    rival_hold = taken.data["createHold"]["token"]
    fan_queue_token = token_of(fan)
    # when the fan's hold is refused SOLD_OUT (the token was spent beside it)
    refused = await gql(
        client, HOLD, {"i": {**item, "queueToken": fan_queue_token}}, token=fan_token
    )
    assert refused.code == "SOLD_OUT"
    # then, once the rival lets go, the same token holds (it was not used up by the refusal)
    released = await gql(client, RELEASE, {"t": rival_hold}, token=rival_token)
    assert released.data["releaseHold"] is True
    await heard_free(rt, sale)
    held = await gql(client, HOLD, {"i": {**item, "queueToken": fan_queue_token}}, token=fan_token)
    assert held.data["createHold"]["sessionId"] == sale.session.id
    # and it stays spent: a refused try after the hold does not make it usable again
    again = await gql(client, HOLD, {"i": {**item, "queueToken": fan_queue_token}}, token=fan_token)
    assert again.code == "SOLD_OUT"
    mine = held.data["createHold"]["token"]
    assert (await gql(client, RELEASE, {"t": mine}, token=fan_token)).data["releaseHold"] is True
    await heard_free(rt, sale)
    replayed = await gql(
        client, HOLD, {"i": {**item, "queueToken": fan_queue_token}}, token=fan_token
    )
    assert (replayed.code, replayed.error["extensions"].get("reason")) == (
        "QUEUE_TOKEN_INVALID",
        "REPLAYED",
    )


async def heard_free(rt: Runtime, sale: Any) -> None:
    """Until this process has heard of a release (it remembers a sell-out it saw)."""
    await until(
        lambda: not rt.sold_out.is_sold_out(sale.session.id, sale.tier.id),
        "the release to be heard",
        timeout=5.0,
    )


async def test_a_session_without_a_queue_needs_no_token(client: httpx.AsyncClient, rt: Runtime):
    sale = await queue_sale(rt)
    async with rt.db.write() as session:
        row = await session.get(EventSession, sale.session.id)
        assert row is not None
        row.queue_enabled = False
        session.add(row)
    await rt.catalog_cache.invalidate(event_ids=[sale.event.id], sessions=[sale.session.id])
    ((_fan, fan_token),) = await customers(rt, 1)
    item = {"sessionId": sale.session.id, "tierId": sale.tier.id, "quantity": 1}
    assert (await gql(client, HOLD, {"i": item}, token=fan_token)).data["createHold"]


class UnreachableCodes:
    """A short-lived store that fails when a queue token is spent (Redis went away)."""

    def __init__(self, codes: CodeStore) -> None:
        self.codes = codes

    def __getattr__(self, name: str) -> Any:
        return getattr(self.codes, name)

    async def put_if_absent(self, key: str, value: str, *, ttl_seconds: float) -> bool:
        raise ConnectionError("the store is unreachable")

    def put_if_absent_soon(self, key: str, value: str, *, ttl_seconds: float) -> Any:
        return self.put_if_absent(key, value, ttl_seconds=ttl_seconds)


async def test_a_token_that_cannot_be_spent_leaves_no_hold(client: httpx.AsyncClient, rt: Runtime):
    # given a queue session and a good token
    sale = await queue_sale(rt)
    ((fan, _fan_token),) = await customers(rt, 1)
    token = rt.queue_tokens.issue(user_id=fan.id, event_id=sale.event.id).token
    before = await available(client, sale.session.id)
    # when spending the token fails after the seats were held
    with pytest.raises(ConnectionError):
        await inventory.create_hold(
            db=rt.db,
            ledger=rt.backends.ledger,
            rules_cache=rt.session_rules,
            sold_out=rt.sold_out,
            queue_tokens=rt.queue_tokens,
            codes=UnreachableCodes(rt.backends.codes),  # type: ignore[arg-type]
            viewer=await viewer_for(rt, fan),
            session_id=sale.session.id,
            tier_id=sale.tier.id,
            quantity=2,
            queue_token=token,
            ttl_seconds=120,
        )
    # then the seats are back, and the token still works once
    assert await available(client, sale.session.id) == before
    held = await hold_for(
        rt, fan, sale.session, tier_id=sale.tier.id, quantity=2, queue_token=token
    )
    assert held.quantity == 2
