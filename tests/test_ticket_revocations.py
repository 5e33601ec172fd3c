"""Revocation and re-issue: the old payload is refused online and offline (the bundle's list and
version grow), the new one checks in; refunds revoke inside their own transaction."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.errors import AlreadyCheckedIn, BadUserInput, Forbidden, NotFound, TicketRevoked
from boxoffice.models.identity import AuditEntry
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.tickets import Ticket, TicketStatus
from boxoffice.runtime import Runtime
from boxoffice.services import check_ins, scanner_bundles, ticket_revocations
from boxoffice.services.ticket_issuance import issue_for_order
from boxoffice.verifier import Bundle, Verdict, verify
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import on_sale
from tests.ticket_factories import gate_staff, organizer, ticketed_order, tickets_of


async def events_of(rt: Runtime, topic: str) -> list[OutboxEvent]:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(OutboxEvent).where(OutboxEvent.topic == topic).order_by(col(OutboxEvent.seq))
        )
        return list(rows.all())


async def test_a_reissued_tickets_old_payload_is_refused_and_the_new_one_checks_in(rt: Runtime):
    # given a ticket whose screenshot leaked, and a gate holding the session's bundle
    sale = await on_sale(rt)
    user = await make_user(rt, "leak@example.com")
    order, [leaked, _other] = await ticketed_order(rt, user, sale)
    _boss, boss = await organizer(rt, "boss@club.test", sale.tenant)
    _staff, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    deps = rt.ticket_deps
    before = await scanner_bundles.bundle_for_session(
        deps=deps, viewer=gate, session_id=sale.session.id
    )
    # when the organizer reissues it
    fresh = await ticket_revocations.reissue_ticket(
        deps=deps, viewer=boss, ticket_id=leaked.id, reason="screenshot leaked"
    )
    # then the new ticket is for the same unit, with a new serial, nonce and signature
    assert fresh.ticket_sn != leaked.ticket_sn and fresh.nonce != leaked.nonce
    assert (fresh.seat_id, fresh.order_id, fresh.user_id) == (leaked.seat_id, order.id, user.id)
    assert fresh.reissued_from == leaked.id and fresh.status == TicketStatus.VALID
    async with rt.db.read() as session:
        old = await session.get(Ticket, leaked.id)
    assert old is not None and old.status == TicketStatus.REVOKED
    assert old.revoke_reason == "screenshot leaked" and old.order_item_id is None
    assert fresh.order_item_id == leaked.order_item_id
    # and the bundle revokes the old serial with a higher version
    after = await scanner_bundles.bundle_for_session(
        deps=deps, viewer=gate, session_id=sale.session.id
    )
    assert after.revoked == (leaked.ticket_sn,) and after.version > before.version
    parsed = Bundle.parse(after.as_json())
    now = utcnow()
    assert verify(parsed, leaked.qr_payload, session=sale.session.id, now=now).verdict is (
        Verdict.REVOKED
    )
    assert verify(parsed, fresh.qr_payload, session=sale.session.id, now=now).ok
    # and online the old payload is refused, the new one admitted
    refused = await check_ins.check_in(deps=deps, viewer=gate, payload=leaked.qr_payload)
    assert (refused.ok, refused.code) == (False, "TICKET_REVOKED")
    assert (await check_ins.check_in(deps=deps, viewer=gate, payload=fresh.qr_payload)).ok
    # and the holder's order lists both; events and the audit trail tell what happened
    assert sorted(t.status for t in await tickets_of(rt, order.id)) == sorted(
        [TicketStatus.VALID, TicketStatus.REVOKED, TicketStatus.USED]
    )
    assert [e.aggregate_id for e in await events_of(rt, "ticket.revoked")] == [leaked.id]
    assert fresh.id in [e.aggregate_id for e in await events_of(rt, "ticket.issued")]
    async with rt.db.read() as session:
        entry = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "ticket.reissue"))
        ).one()
    assert entry.target_id == leaked.id and entry.after is not None
    assert entry.after["reissuedAs"] == fresh.ticket_sn
    # and replaying order.paid issues nothing for the reissued unit
    async with rt.db.write() as session:
        assert await issue_for_order(session, rt.ticket_keys, order.id) == []


async def test_only_a_valid_ticket_is_reissued_by_its_tenants_organizer(rt: Runtime):
    # given a used ticket, a revoked one, and people who may not reissue
    sale = await on_sale(rt)
    user = await make_user(rt, "rules@example.com")
    _order, [used, revoked] = await ticketed_order(rt, user, sale)
    _boss, boss = await organizer(rt, "boss@club.test", sale.tenant)
    _staff, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    assert (await check_ins.check_in(deps=rt.ticket_deps, viewer=gate, payload=used.qr_payload)).ok
    async with rt.db.write() as session:
        await ticket_revocations.revoke_tickets(session, ticket_ids=[revoked.id], reason="refund")
    _rival, rival = await organizer(rt, "rival@other.test", await make_tenant(rt, "Rival"))

    async def reissue(viewer: object, ticket_id: str, reason: str | None = None) -> Ticket:
        return await ticket_revocations.reissue_ticket(
            deps=rt.ticket_deps,
            viewer=viewer,  # type: ignore[arg-type]
            ticket_id=ticket_id,
            reason=reason,
        )

    # then
    with pytest.raises(AlreadyCheckedIn):
        await reissue(boss, used.id)
    with pytest.raises(TicketRevoked):
        await reissue(boss, revoked.id)
    with pytest.raises(NotFound):
        await reissue(rival, used.id)
    with pytest.raises(NotFound):
        await reissue(boss, "no-such-ticket")
    with pytest.raises(Forbidden):
        await reissue(gate, used.id)
    with pytest.raises(Forbidden):
        await reissue(await viewer_for(rt, user), used.id)
    with pytest.raises(BadUserInput):
        await reissue(boss, used.id, reason="x" * 501)
    assert len(await tickets_of(rt, _order.id)) == 2


async def test_concurrent_reissues_of_one_ticket_replace_it_once(rt: Runtime):
    # given one valid ticket and an organizer double-clicking
    sale = await on_sale(rt)
    user = await make_user(rt, "double@example.com")
    order, [ticket, _] = await ticketed_order(rt, user, sale)
    _boss, boss = await organizer(rt, "boss@club.test", sale.tenant)

    async def attempt() -> str:
        try:
            fresh = await ticket_revocations.reissue_ticket(
                deps=rt.ticket_deps, viewer=boss, ticket_id=ticket.id
            )
        except TicketRevoked:
            return "revoked"
        return fresh.id

    # when
    results = await asyncio.gather(*(attempt() for _ in range(5)))
    # then one replacement exists, the others learn the ticket was revoked already
    assert results.count("revoked") == 4
    assert len(await tickets_of(rt, order.id)) == 3


async def test_revoke_tickets_joins_the_callers_transaction_and_bumps_the_version(rt: Runtime):
    # given two tickets of a session
    sale = await on_sale(rt)
    user = await make_user(rt, "refund@example.com")
    _order, [first, second] = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "gate@club.test", sale.tenant)

    async def bundle_version() -> tuple[int, tuple[str, ...]]:
        bundle = await scanner_bundles.bundle_for_session(
            deps=rt.ticket_deps, viewer=gate, session_id=sale.session.id
        )
        return bundle.version, bundle.revoked

    # when a refund's transaction fails after revoking, nothing is revoked
    async def failing_refund() -> None:
        async with rt.db.write() as session:
            await ticket_revocations.revoke_tickets(session, ticket_ids=[first.id], reason="refund")
            raise RuntimeError("the refund failed")

    with pytest.raises(RuntimeError):
        await failing_refund()
    assert await bundle_version() == (0, ())
    # when it commits, both are revoked with one version step per call
    async with rt.db.write() as session:
        revoked = await ticket_revocations.revoke_tickets(
            session, ticket_ids=[first.id, second.id, "unknown"], reason="refund"
        )
    assert sorted(t.id for t in revoked) == sorted([first.id, second.id])
    assert await bundle_version() == (1, tuple(sorted([first.ticket_sn, second.ticket_sn])))
    # and revoking again changes nothing
    async with rt.db.write() as session:
        assert (
            await ticket_revocations.revoke_tickets(session, ticket_ids=[first.id], reason="x")
            == []
        )
    assert (await bundle_version())[0] == 1
    assert len(await events_of(rt, "ticket.revoked")) == 2
