"""Issuing tickets from ``order.paid``: one per unit, exactly once, signed so that anyone with
the bundle's public key verifies them; keys rotate without breaking issued tickets."""

from __future__ import annotations

import asyncio
import base64
import json

import nacl.signing
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.models.outbox import OutboxCursor, OutboxDelivery, OutboxEvent
from boxoffice.models.tickets import Ticket, TicketKeyRecord, TicketStatus
from boxoffice.runtime import Runtime
from boxoffice.services import check_ins, scanner_bundles
from boxoffice.services.ticket_issuance import CONSUMER_NAME, VALID_AFTER_END, issue_for_order
from boxoffice.services.ticket_keys import TicketKeys
from boxoffice.services.tickets import TicketDeps
from boxoffice.verifier import Bundle, Verdict, verify
from tests.helpers import make_user
from tests.order_factories import hold_for, on_sale, order_for, paid_order
from tests.ticket_factories import gate_staff, issue_pending, ticketed_order, tickets_of


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def topics(rt: Runtime, topic: str) -> list[OutboxEvent]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def test_a_paid_order_gets_one_signed_ticket_per_unit(rt: Runtime):
    # given a paid order of two seats and another of three general-admission units
    sale = await on_sale(rt)
    user = await make_user(rt, "fan@example.com")
    seated = await paid_order(rt, user, sale.session, seat_ids=sale.seat_ids[:2])
    standing = await paid_order(rt, user, sale.session, tier_id=sale.ga.id, quantity=3)
    # when the issuance consumer runs
    await issue_pending(rt)
    # then each unit has one VALID ticket for the buyer, with a unique unguessable serial
    seats, ga = await tickets_of(rt, seated.id), await tickets_of(rt, standing.id)
    assert len(seats) == 2 and len(ga) == 3
    every = seats + ga
    assert {t.status for t in every} == {TicketStatus.VALID}
    assert {t.user_id for t in every} == {user.id}
    assert len({t.ticket_sn for t in every}) == 5
    assert all(t.ticket_sn.startswith("T") and len(t.ticket_sn) == 19 for t in every)
    assert sorted(t.seat_id for t in seats) == sorted(sale.seat_ids[:2])
    assert all(t.seat_id is None and t.seat_label is None for t in ga)
    # and the signed payload carries the ticket, its session and the validity window
    for ticket in seats:
        fields = json.loads(b64url_decode(ticket.qr_payload.split(".")[0]))
        assert fields["sn"] == ticket.ticket_sn and fields["session"] == sale.session.id
        assert fields["event"] == sale.event.id and fields["seat"] == ticket.seat_label
        assert fields["nonce"] == ticket.nonce and fields["kid"] == ticket.kid
        assert fields["exp"] == int((sale.session.ends_at + VALID_AFTER_END).timestamp())
        assert fields["nbf"] <= int(utcnow().timestamp())
    # and one ticket.issued event per ticket, shaped like the API's Ticket
    issued = await topics(rt, "ticket.issued")
    assert sorted(e.aggregate_id for e in issued) == sorted(t.id for t in every)
    resource = next(e for e in issued if e.aggregate_id == seats[0].id).payload["resource"]
    assert resource["ticketSn"] == seats[0].ticket_sn
    assert resource["eventTitle"] == "On Sale Show"
    assert set(resource["seat"]) >= {"section", "row", "number"}
    assert "qrPayload" not in resource


async def test_a_paid_orders_tickets_verify_offline_with_only_the_bundles_public_key(
    rt: Runtime,
):
    # given a ticketed order and the bundle a gate downloads
    sale = await on_sale(rt)
    user = await make_user(rt, "offline@example.com")
    _order, tickets = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    bundle = (
        await scanner_bundles.bundle_for_session(
            deps=rt.ticket_deps, viewer=gate, session_id=sale.session.id
        )
    ).as_json()
    keys = {entry["kid"]: base64.b64decode(entry["key"]) for entry in bundle["publicKeys"]}
    for ticket in tickets:
        # when a third party checks the payload with PyNaCl alone
        body_text, signature_text = ticket.qr_payload.split(".")
        body, signature = b64url_decode(body_text), b64url_decode(signature_text)
        kid = json.loads(body)["kid"]
        # then the signature over the payload bytes verifies under the bundle's key
        assert nacl.signing.VerifyKey(keys[kid]).verify(body, signature) == body
        # and a changed payload does not
        forged = body.replace(ticket.ticket_sn.encode(), b"T000000000000000000")
        try:
            nacl.signing.VerifyKey(keys[kid]).verify(forged, signature)
        except nacl.exceptions.BadSignatureError:
            pass
        else:
            raise AssertionError("a forged payload verified")


async def test_running_the_consumer_again_or_replaying_the_event_issues_nothing_more(
    rt: Runtime,
):
    # given an order whose tickets were issued
    sale = await on_sale(rt)
    user = await make_user(rt, "twice@example.com")
    order, first = await ticketed_order(rt, user, sale, tier_id=sale.ga.id, quantity=2)
    # when the consumer runs again, and the event is delivered again (its delivery forgotten,
    # as after a crash between the work and its record)
    assert await issue_pending(rt) == 0
    async with rt.db.write() as session:
        for row in (
            await session.exec(
                select(OutboxDelivery).where(OutboxDelivery.consumer == CONSUMER_NAME)
            )
        ).all():
            await session.delete(row)
    async with rt.db.write() as session:
        cursor = await session.get(OutboxCursor, CONSUMER_NAME)
        if cursor is not None:
            await session.delete(cursor)
    assert await issue_pending(rt) >= 1
    # then the order still has exactly one ticket per unit, the same ones
    again = await tickets_of(rt, order.id)
    assert [t.id for t in again] == [t.id for t in first]
    assert len(await topics(rt, "ticket.issued")) == 2


async def test_concurrent_issuance_of_one_order_makes_one_ticket_per_unit(rt: Runtime):
    # given a paid order whose event has not been consumed yet
    sale = await on_sale(rt)
    user = await make_user(rt, "race@example.com")
    order = await paid_order(rt, user, sale.session, seat_ids=sale.seat_ids[:3])

    async def issue() -> int:
        try:
            async with rt.db.write() as session:
                return len(await issue_for_order(session, rt.ticket_keys, order.id))
        except Exception:  # the loser fails on the unique item and would be retried
            return -1

    # when several deliveries race
    results = await asyncio.gather(*(issue() for _ in range(5)))
    # then exactly three tickets exist, one per item, made by one winner
    made = await tickets_of(rt, order.id)
    assert len(made) == 3 and len({t.order_item_id for t in made}) == 3
    assert results.count(3) == 1
    assert all(r in (0, -1) for r in results if r != 3)


async def test_an_unpaid_order_gets_no_tickets(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "unpaid@example.com")
    order = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1])
    )
    async with rt.db.write() as session:
        assert await issue_for_order(session, rt.ticket_keys, order.id) == []
    assert await tickets_of(rt, order.id) == []


async def test_a_rotated_out_key_keeps_verifying_its_tickets_until_their_session_ends(
    rt: Runtime,
):
    # given a ticket signed with the current key
    sale = await on_sale(rt)
    user = await make_user(rt, "rotate@example.com")
    _order, [old_ticket, *_] = await ticketed_order(rt, user, sale)
    old_kid = rt.ticket_keys.kid
    async with rt.db.read() as session:
        record = await session.get(TicketKeyRecord, old_kid)
    assert record is not None and record.valid_until == old_ticket.expires_at
    # when the process restarts with a new seed and issues more tickets
    rotated = TicketKeys(rt.db, bytes(range(200, 232)))
    deps = TicketDeps(db=rt.db, keys=rotated)
    new_order = await paid_order(rt, user, sale.session, seat_ids=sale.seat_ids[2:3])
    async with rt.db.write() as session:
        [new_ticket] = await issue_for_order(session, rotated, new_order.id)
    assert new_ticket.kid != old_kid
    # then the bundle carries both keys, the old one until its tickets expire
    _staff, gate = await gate_staff(rt, "rotgate@club.test", sale.tenant)
    bundle = await scanner_bundles.bundle_for_session(
        deps=deps, viewer=gate, session_id=sale.session.id
    )
    until = {key.kid: key.valid_until for key in bundle.public_keys}
    assert until == {rotated.kid: None, old_kid: old_ticket.expires_at}
    parsed = Bundle.parse(bundle.as_json())
    for ticket in (old_ticket, new_ticket):
        assert verify(parsed, ticket.qr_payload, session=sale.session.id, now=utcnow()).ok
    # and the server checks both in
    for ticket in (old_ticket, new_ticket):
        result = await check_ins.check_in(deps=deps, viewer=gate, payload=ticket.qr_payload)
        assert result.ok, result
    # and a gate after the session's end no longer accepts the old key
    late = verify(parsed, old_ticket.qr_payload, session=sale.session.id, now=old_ticket.expires_at)
    assert late.verdict in (Verdict.UNKNOWN_KEY, Verdict.EXPIRED)
    async with rt.db.read() as session:
        stored = (await session.exec(select(Ticket).where(Ticket.id == new_ticket.id))).one()
    assert stored.status == TicketStatus.USED
