"""Check-in: one admission per ticket under races, a distinct refusal for each kind of bad
ticket, tenant scoping, and offline scans (recorded once, earliest wins, conflicts reported)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import func, select

from boxoffice.clock import utcnow
from boxoffice.errors import BadUserInput, Forbidden, NotFound, Unauthenticated
from boxoffice.models.identity import Role
from boxoffice.models.notifications import Notification
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.tickets import (
    CheckIn,
    CheckInConflict,
    CheckInSource,
    OfflineScan,
    ScanOutcome,
    Ticket,
    TicketStatus,
)
from boxoffice.runtime import Runtime
from boxoffice.services import check_ins, notifications, ticket_revocations
from boxoffice.services.check_ins import CheckInResult, OfflineScanInput
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.ticket_signing import TicketKeyring, sign_ticket
from boxoffice.services.viewer import Viewer
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import on_sale
from tests.signed_tickets import b64url, with_fields
from tests.ticket_factories import gate_staff, organizer, ticketed_order


async def count(rt: Runtime, model: type, **where: object) -> int:
    async with rt.db.read() as session:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int((await session.exec(query)).one())


async def stored(rt: Runtime, ticket: Ticket) -> Ticket:
    async with rt.db.read() as session:
        found = await session.get(Ticket, ticket.id)
    assert found is not None
    return found


async def scan(rt: Runtime, viewer: Viewer, payload: str, **kw: object) -> CheckInResult:
    return await check_ins.check_in(
        deps=rt.ticket_deps,
        viewer=viewer,
        payload=payload,
        **kw,  # type: ignore[arg-type]
    )


# online


async def test_twenty_concurrent_scans_of_one_ticket_admit_exactly_one(rt: Runtime):
    # given a ticket and twenty gates scanning it at once
    sale = await on_sale(rt)
    user = await make_user(rt, "holder@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    # when
    results = await asyncio.gather(
        *(scan(rt, gate, ticket.qr_payload, gate=f"G{i}") for i in range(20))
    )
    # then exactly one is admitted; the others learn when and where that happened
    winners = [r for r in results if r.ok]
    assert len(winners) == 1
    [winner] = winners
    assert winner.check_in is not None and winner.check_in.gate is not None
    losers = [r for r in results if not r.ok]
    assert len(losers) == 19
    assert {r.code for r in losers} == {"ALREADY_CHECKED_IN"}
    for loser in losers:
        assert loser.check_in is not None
        assert loser.check_in.gate == winner.check_in.gate
        assert loser.check_in.scanned_at == winner.check_in.scanned_at
    # and the database holds one check-in, the ticket USED, one checked_in event
    assert await count(rt, CheckIn, ticket_id=ticket.id) == 1
    assert (await stored(rt, ticket)).status == TicketStatus.USED
    assert await count(rt, OutboxEvent, topic="ticket.checked_in") == 1


async def test_each_kind_of_bad_ticket_is_refused_with_its_own_code_or_reason(rt: Runtime):
    # given tickets of two sessions of one tenant, one of them revoked
    sale = await on_sale(rt)
    other_sale = await on_sale(rt, tenant=sale.tenant)
    user = await make_user(rt, "many@example.com")
    _order, [good, revoked] = await ticketed_order(rt, user, sale)
    _other, [elsewhere, *_] = await ticketed_order(rt, user, other_sale)
    async with rt.db.write() as session:
        await ticket_revocations.revoke_tickets(session, ticket_ids=[revoked.id], reason="refund")
    _staff, gate = await gate_staff(rt, "refuse@club.test", sale.tenant)
    signature = good.qr_payload.split(".")[1]
    stranger = TicketKeyring.from_seed(bytes(range(50, 82)))
    payloads = {
        "tampered": b64url(with_fields(good.qr_payload, seat="VIP 1排 1号")) + "." + signature,
        "unknown key": sign_ticket(
            stranger,
            sn=good.ticket_sn,
            event=sale.event.id,
            session=sale.session.id,
            seat=good.seat_label,
            not_before=utcnow() - timedelta(hours=1),
            expires_at=utcnow() + timedelta(hours=1),
        ),
        "malformed": "not-a-ticket",
        "revoked": revoked.qr_payload,
        "other session": elsewhere.qr_payload,
    }
    # when each is scanned at the gate of the first session
    answers = {
        name: await scan(rt, gate, payload, session_id=sale.session.id)
        for name, payload in payloads.items()
    }
    # then each is refused, and no two for the same (code, reason)
    kinds = {name: (a.code, a.reason) for name, a in answers.items()}
    assert kinds == {
        "tampered": ("SIGNATURE_INVALID", "BAD_SIGNATURE"),
        "unknown key": ("SIGNATURE_INVALID", "UNKNOWN_KEY"),
        "malformed": ("SIGNATURE_INVALID", "MALFORMED"),
        "revoked": ("TICKET_REVOKED", None),
        "other session": ("WRONG_SESSION", None),
    }
    assert not any(a.ok for a in answers.values())
    assert answers["revoked"].ticket is not None
    assert answers["tampered"].ticket is None
    # and nothing was admitted, while the good ticket still is
    assert await count(rt, CheckIn) == 0
    assert (await scan(rt, gate, good.qr_payload, session_id=sale.session.id)).ok


async def test_a_ticket_outside_its_window_is_refused_as_expired(rt: Runtime):
    # given a ticket whose session ended long ago (its window closed)
    sale = await on_sale(rt)
    user = await make_user(rt, "late@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    async with rt.db.write() as session:
        row = await session.get(Ticket, ticket.id)
        assert row is not None
        ring = rt.ticket_keys.signing_ring()
        row.qr_payload = sign_ticket(
            ring,
            sn=row.ticket_sn,
            event=row.event_id,
            session=row.session_id,
            seat=row.seat_label,
            not_before=utcnow() - timedelta(days=2),
            expires_at=utcnow() - timedelta(days=1),
        )
        session.add(row)
    _staff, gate = await gate_staff(rt, "window@club.test", sale.tenant)
    # when
    result = await scan(rt, gate, row.qr_payload)
    # then
    assert (result.ok, result.code, result.reason) == (False, "SIGNATURE_INVALID", "EXPIRED")


async def test_a_well_signed_payload_that_is_not_the_issued_ticket_is_refused(rt: Runtime):
    # given a payload signed with the real key for a real serial but another nonce (a leak of
    # the signing key, or a bug): it is not the ticket on record
    sale = await on_sale(rt)
    user = await make_user(rt, "nonce@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    resigned = sign_ticket(
        rt.ticket_keys.signing_ring(),
        sn=ticket.ticket_sn,
        event=ticket.event_id,
        session=ticket.session_id,
        seat=ticket.seat_label,
        not_before=ticket.not_before,
        expires_at=ticket.expires_at,
    )
    _staff, gate = await gate_staff(rt, "nonce@club.test", sale.tenant)
    # when
    result = await scan(rt, gate, resigned)
    # then
    assert (result.code, result.reason) == ("SIGNATURE_INVALID", "NOT_ISSUED")
    assert (await stored(rt, ticket)).status == TicketStatus.VALID


async def test_only_the_tenants_gate_staff_and_organizers_check_in(rt: Runtime):
    # given a ticket of one tenant
    sale = await on_sale(rt)
    user = await make_user(rt, "scoped@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    other = await make_tenant(rt, "Other Club")
    _s, foreign_gate = await gate_staff(rt, "foreign@other.test", other)
    customer = await viewer_for(rt, user)
    agent = await viewer_for(rt, await make_user(rt, "agent@example.com", Role.AGENT))
    # then another tenant's gate staff do not find it, customers and agents may not scan
    with pytest.raises(NotFound):
        await scan(rt, foreign_gate, ticket.qr_payload)
    with pytest.raises(Forbidden):
        await scan(rt, customer, ticket.qr_payload)
    with pytest.raises(Forbidden):
        await scan(rt, agent, ticket.qr_payload)
    with pytest.raises(Unauthenticated):
        await scan(rt, Viewer(), ticket.qr_payload)
    assert await count(rt, CheckIn) == 0
    # and the tenant's organizer may
    _o, boss = await organizer(rt, "boss@club.test", sale.tenant)
    assert (await scan(rt, boss, ticket.qr_payload, gate="VIP")).ok


async def test_gate_names_are_validated(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "gatename@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "names@club.test", sale.tenant)
    with pytest.raises(BadUserInput) as refused:
        await scan(rt, gate, ticket.qr_payload, gate="G" * 65)
    assert refused.value.field == "gate"
    assert (await stored(rt, ticket)).status == TicketStatus.VALID


# offline


def offline(payload: str, device: str, gate: str, minutes_ago: float) -> OfflineScanInput:
    return OfflineScanInput(
        payload=payload,
        device_id=device,
        gate=gate,
        scanned_at=utcnow().replace(microsecond=0) - timedelta(minutes=minutes_ago),
    )


async def upload(
    rt: Runtime, viewer: Viewer, session_id: str, scans: list[OfflineScanInput]
) -> list[CheckInResult]:
    return await check_ins.upload_offline_scans(
        deps=rt.ticket_deps, viewer=viewer, session_id=session_id, scans=scans
    )


async def test_uploading_the_same_offline_scans_twice_records_them_once(rt: Runtime):
    # given two tickets a gate admitted offline
    sale = await on_sale(rt)
    user = await make_user(rt, "upload@example.com")
    _order, [first, second] = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "device@club.test", sale.tenant)
    scans = [
        offline(first.qr_payload, "scanner-1", "North", 20),
        offline(second.qr_payload, "scanner-1", "North", 18),
    ]
    # when the device uploads them, then again (it did not hear the answer)
    once = await upload(rt, gate, sale.session.id, scans)
    twice = await upload(rt, gate, sale.session.id, scans)
    # then both were admitted, once, and the repeat answers the same
    assert [r.ok for r in once] == [True, True]
    assert [(r.ok, r.code, r.conflict) for r in twice] == [(True, None, False)] * 2
    assert await count(rt, OfflineScan) == 2
    assert await count(rt, CheckIn) == 2
    assert await count(rt, CheckInConflict) == 0
    assert await count(rt, OutboxEvent, topic="ticket.checked_in") == 2
    async with rt.db.read() as session:
        check_in = (await session.exec(select(CheckIn).where(CheckIn.ticket_id == first.id))).one()
    assert check_in.source == CheckInSource.OFFLINE
    assert check_in.scanned_at == scans[0].scanned_at
    assert (check_in.gate, check_in.device_id) == ("North", "scanner-1")
    assert (await stored(rt, first)).status == TicketStatus.USED


async def test_a_ticket_admitted_at_two_gates_is_a_conflict_reported_to_the_organizer(
    rt: Runtime,
):
    # given a ticket (a shared screenshot) admitted offline at two gates
    sale = await on_sale(rt)
    user = await make_user(rt, "shared@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    boss, _boss_viewer = await organizer(rt, "boss@club.test", sale.tenant)
    _staff, gate = await gate_staff(rt, "twogates@club.test", sale.tenant)
    north = offline(ticket.qr_payload, "scanner-N", "North", 30)
    south = offline(ticket.qr_payload, "scanner-S", "South", 25)
    # when both devices upload (the later scan first)
    [south_result] = await upload(rt, gate, sale.session.id, [south])
    [north_result] = await upload(rt, gate, sale.session.id, [north])
    # then the earlier scan is the check-in, and the second upload reveals the conflict
    assert south_result.ok and not south_result.conflict
    assert north_result.ok and north_result.conflict
    async with rt.db.read() as session:
        check_in = (await session.exec(select(CheckIn).where(CheckIn.ticket_id == ticket.id))).one()
        conflict = (await session.exec(select(CheckInConflict))).one()
        outcomes = {s.device_id: s.outcome for s in (await session.exec(select(OfflineScan))).all()}
    assert (check_in.gate, check_in.scanned_at) == ("North", north.scanned_at)
    assert (conflict.first_gate, conflict.first_at) == ("North", north.scanned_at)
    assert (conflict.second_gate, conflict.second_at) == ("South", south.scanned_at)
    assert outcomes == {"scanner-N": ScanOutcome.CHECKED_IN, "scanner-S": ScanOutcome.CONFLICT}
    # and the organizer lists it, and is told in-app
    page = await check_ins.list_conflicts(
        deps=rt.ticket_deps, viewer=_boss_viewer, session_id=sale.session.id
    )
    assert [c.ticket_sn for c in page.items] == [ticket.ticket_sn]
    assert await count(rt, OutboxEvent, topic="ticket.check_in_conflict") == 1
    await dispatch_once(rt, notifications.notification_consumer())
    async with rt.db.read() as session:
        told = (
            await session.exec(
                select(Notification).where(Notification.topic == "ticket.check_in_conflict")
            )
        ).all()
    assert [n.user_id for n in told] == [boss.id]
    assert ticket.ticket_sn in told[0].body
    # and uploading again adds nothing
    again = await upload(rt, gate, sale.session.id, [north, south])
    assert [(r.ok, r.code, r.conflict) for r in again] == [
        (True, None, True),
        (False, "ALREADY_CHECKED_IN", True),
    ]
    assert await count(rt, CheckInConflict) == 1
    # and gate staff may not read the conflicts
    with pytest.raises(Forbidden):
        await check_ins.list_conflicts(deps=rt.ticket_deps, viewer=gate, session_id=sale.session.id)


async def test_an_offline_scan_after_an_online_check_in_elsewhere_is_a_conflict(rt: Runtime):
    # given a ticket checked in online at the main gate
    sale = await on_sale(rt)
    user = await make_user(rt, "mixed@example.com")
    _order, [ticket, *_] = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "mixed@club.test", sale.tenant)
    online = await scan(rt, gate, ticket.qr_payload, gate="Main", device_id="tablet-1")
    assert online.ok
    # when a device that was offline uploads a later scan of it at another gate, and the same
    # tablet re-scanned it too
    later = OfflineScanInput(
        ticket.qr_payload, "scanner-X", utcnow() + timedelta(seconds=1), "Side"
    )
    repeat = OfflineScanInput(
        ticket.qr_payload, "tablet-1", utcnow() + timedelta(seconds=2), "Main"
    )
    answers = await upload(rt, gate, sale.session.id, [later, repeat])
    # then both are refused; the other gate's scan is a conflict, the same place's a duplicate
    assert [(a.ok, a.code, a.conflict) for a in answers] == [
        (False, "ALREADY_CHECKED_IN", True),
        (False, "ALREADY_CHECKED_IN", True),
    ]
    assert all(a.check_in is not None and a.check_in.gate == "Main" for a in answers)
    assert await count(rt, CheckInConflict) == 1
    async with rt.db.read() as session:
        outcomes = {s.device_id: s.outcome for s in (await session.exec(select(OfflineScan))).all()}
    assert outcomes == {"scanner-X": ScanOutcome.CONFLICT, "tablet-1": ScanOutcome.DUPLICATE}


async def test_offline_scans_of_revoked_or_foreign_tickets_are_refused(rt: Runtime):
    # given a revoked ticket and a ticket of another session
    sale = await on_sale(rt)
    other_sale = await on_sale(rt, tenant=sale.tenant)
    user = await make_user(rt, "offref@example.com")
    _order, [good, revoked] = await ticketed_order(rt, user, sale)
    _other, [foreign, *_] = await ticketed_order(rt, user, other_sale)
    async with rt.db.write() as session:
        await ticket_revocations.revoke_tickets(session, ticket_ids=[revoked.id], reason="refund")
    _staff, gate = await gate_staff(rt, "offref@club.test", sale.tenant)
    # when a device uploads them
    answers = await upload(
        rt,
        gate,
        sale.session.id,
        [
            offline(revoked.qr_payload, "d1", "A", 5),
            offline(foreign.qr_payload, "d1", "A", 4),
            offline(good.qr_payload[:-4] + "AAAA", "d1", "A", 3),
        ],
    )
    # then
    assert [(a.code, a.reason) for a in answers] == [
        ("TICKET_REVOKED", None),
        ("WRONG_SESSION", None),
        ("SIGNATURE_INVALID", "BAD_SIGNATURE"),
    ]
    assert await count(rt, CheckIn) == 0
    assert (await stored(rt, revoked)).status == TicketStatus.REVOKED


async def test_an_upload_with_a_bad_scan_records_nothing(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "future@example.com")
    _order, [ticket, other] = await ticketed_order(rt, user, sale)
    _staff, gate = await gate_staff(rt, "future@club.test", sale.tenant)
    scans = [
        offline(ticket.qr_payload, "d1", "A", 5),
        OfflineScanInput(other.qr_payload, "d1", utcnow() + timedelta(hours=1), "A"),
    ]
    with pytest.raises(BadUserInput) as refused:
        await upload(rt, gate, sale.session.id, scans)
    assert refused.value.field == "scans[1].scannedAt"
    assert await count(rt, OfflineScan) == 0


async def test_offline_uploads_are_scoped_to_the_sessions_tenant(rt: Runtime):
    sale = await on_sale(rt)
    other = await make_tenant(rt, "Elsewhere")
    _s, foreign_gate = await gate_staff(rt, "elsewhere@other.test", other)
    with pytest.raises(NotFound) as missing:
        await upload(rt, foreign_gate, sale.session.id, [])
    assert missing.value.details["field"] == "sessionId"
    customer = await viewer_for(rt, await make_user(rt, "c@example.com"))
    with pytest.raises(Forbidden):
        await upload(rt, customer, sale.session.id, [])
