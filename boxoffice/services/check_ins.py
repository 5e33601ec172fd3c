"""Check-in at the gate: online scans, offline scans uploaded later, and their conflicts.

Who: CHECKIN and ORGANIZER staff of the ticket's tenant (and OPERATORs). Other tenants' staff
get ``NOT_FOUND``, everyone else ``FORBIDDEN`` (GraphQL errors). Everything about the ticket
itself is answered as a ``CheckInResult`` (``ok`` false with a ``code``), so a scanner reads
one shape:

* ``SIGNATURE_INVALID`` with a ``reason``: MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE,
  NOT_YET_VALID, EXPIRED (outside the signed validity window), NOT_ISSUED (a well-signed
  payload that is not the ticket on record);
* ``WRONG_SESSION``: the gate checks another session;
* ``TICKET_REVOKED``: refunded or re-issued;
* ``ALREADY_CHECKED_IN``: with when and at which gate the ticket was first admitted.

Online, one check-in per ticket is atomic: a conditional ``UPDATE tickets SET status = USED
WHERE status = VALID`` decides the winner (it also orders the scan against a concurrent
revocation), and the check-in row's unique ``ticket_id`` backs it up.

Offline, a gate admits on its own (``boxoffice.verifier`` with the scanner bundle) and
uploads what it admitted. Each scan is verified at its ``scannedAt`` and kept once per
``(ticket, device, scannedAt)``: uploading again changes nothing and answers the same. The
earliest scan of a ticket is its check-in (a later upload of an earlier scan takes its
place). Two admissions of one ticket by different devices or gates are a conflict: a row the
organizer lists (``checkInConflicts``) and a ``ticket.check_in_conflict`` event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import as_utc, utcnow
from boxoffice.errors import (
    AlreadyCheckedIn,
    BadUserInput,
    NotFound,
    SignatureInvalid,
    TicketError,
    TicketRevoked,
    WrongSession,
)
from boxoffice.models.events import Event, EventSession
from boxoffice.models.identity import Role
from boxoffice.models.tickets import (
    CheckIn,
    CheckInConflict,
    CheckInSource,
    OfflineScan,
    ScanOutcome,
    Ticket,
    TicketStatus,
)
from boxoffice.services import outbox, validation
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.ticket_signing import TicketClaims, verify_ticket
from boxoffice.services.tickets import TicketDeps, by_sn, ticket_resources
from boxoffice.services.viewer import Viewer
from boxoffice.verifier import Verdict

MAX_OFFLINE_SCANS = 500
CLOCK_SKEW = timedelta(minutes=5)
NAME_LENGTH = 64

CONFLICT_KEYS: list[SortKey[CheckInConflict]] = [
    SortKey(col(CheckInConflict.created_at), lambda c: c.created_at, "datetime", descending=True),
    SortKey(col(CheckInConflict.id), lambda c: c.id, descending=True),
]


@dataclass(frozen=True)
class CheckInResult:
    """One scan's answer. ``check_in`` is the ticket's recorded check-in (this scan's when
    ``ok``); ``conflict`` (offline uploads) marks a ticket admitted by more than one device or
    gate, as known once the whole upload was recorded."""

    ok: bool
    code: str | None = None
    reason: str | None = None
    message: str | None = None
    ticket: Ticket | None = None
    check_in: CheckIn | None = None
    conflict: bool = False

    @classmethod
    def refused(
        cls,
        error: TicketError,
        ticket: Ticket | None = None,
        check_in: CheckIn | None = None,
    ) -> CheckInResult:
        reason = error.details.get("reason")
        return cls(
            ok=False,
            code=error.code,
            reason=str(reason) if reason is not None else None,
            message=error.message,
            ticket=ticket,
            check_in=check_in,
        )


@dataclass(frozen=True)
class OfflineScanInput:
    payload: str
    device_id: str
    scanned_at: datetime
    gate: str | None = None


def require_gate_staff(viewer: Viewer) -> str:
    """Anyone who may scan for some tenant (FORBIDDEN for customers and agents)."""
    return viewer.require_role(Role.CHECKIN, Role.ORGANIZER, Role.OPERATOR)


def authorize_gate_staff(
    viewer: Viewer, tenant_id: str, what: str, field: str | None = None
) -> None:
    """CHECKIN or ORGANIZER staff of ``tenant_id`` (or an OPERATOR); other tenants' staff get
    ``NOT_FOUND`` naming ``what``."""
    try:
        viewer.require_staff(tenant_id, Role.CHECKIN, Role.ORGANIZER)
    except NotFound as exc:
        raise NotFound(f"No such {what}.", field=field) from exc


async def _verify(deps: TicketDeps, payload: str, at: datetime) -> TicketClaims:
    """Signature, key id and window at ``at``; an unknown key re-reads the keys once (another
    process may have started signing with a new one)."""
    ring = await deps.keys.keyring()
    try:
        return verify_ticket(payload, ring.public_keys(now=at), now=at)
    except SignatureInvalid as exc:
        if exc.reason != Verdict.UNKNOWN_KEY.value:
            raise
    ring = await deps.keys.keyring(refresh=True)
    return verify_ticket(payload, ring.public_keys(now=at), now=at)


def _on_record(claims: TicketClaims, ticket: Ticket | None) -> bool:
    """The signed claims are those of the ticket issued under that serial number."""
    return (
        ticket is not None
        and claims.nonce == ticket.nonce
        and claims.kid == ticket.kid
        and claims.session == ticket.session_id
        and claims.event == ticket.event_id
    )


NOT_ISSUED = "NOT_ISSUED"


def _not_issued() -> SignatureInvalid:
    return SignatureInvalid("This payload is not a ticket on record.", reason=NOT_ISSUED)


def _already(check_in: CheckIn | None) -> AlreadyCheckedIn:
    if check_in is None:
        return AlreadyCheckedIn()
    where = f" at gate {check_in.gate}" if check_in.gate else ""
    return AlreadyCheckedIn(f"Already checked in{where} at {check_in.scanned_at.isoformat()}.")


async def _first_check_in(session: AsyncSession, ticket_id: str) -> CheckIn | None:
    return (await session.exec(select(CheckIn).where(CheckIn.ticket_id == ticket_id))).first()


def _check_in_json(check_in: CheckIn) -> dict[str, Any]:
    return {
        "at": check_in.scanned_at.isoformat(),
        "gate": check_in.gate,
        "deviceId": check_in.device_id,
        "source": check_in.source.value,
    }


async def _emit_checked_in(session: AsyncSession, ticket: Ticket, check_in: CheckIn) -> None:
    resources = await ticket_resources(session, [ticket])
    outbox.emit(
        session,
        topic="ticket.checked_in",
        aggregate_type="Ticket",
        aggregate_id=ticket.id,
        tenant_id=ticket.tenant_id,
        payload={
            "resource": {**resources[ticket.id], "checkIn": _check_in_json(check_in)},
            "userId": ticket.user_id,
        },
    )


async def check_in(
    *,
    deps: TicketDeps,
    viewer: Viewer,
    payload: str,
    gate: str | None = None,
    session_id: str | None = None,
    device_id: str | None = None,
) -> CheckInResult:
    """Admit the holder of ``payload`` now (see the module docstring). ``session_id``: the
    session this gate admits to (tickets of others are WRONG_SESSION).

    Raises ``Forbidden``, ``NotFound`` (no such ticket, or another tenant's) and
    ``BadUserInput`` (``gate``/``deviceId`` too long); answers every ticket refusal as a result.
    """
    user_id = require_gate_staff(viewer)
    gate = validation.optional_text(gate, field="gate", max_length=NAME_LENGTH)
    device_id = validation.optional_text(device_id, field="deviceId", max_length=NAME_LENGTH)
    now = utcnow()
    try:
        claims = await _verify(deps, payload, now)
    except SignatureInvalid as refused:
        return CheckInResult.refused(refused)
    async with deps.db.read() as session:
        ticket = await by_sn(session, claims.sn)
    if ticket is None:
        raise NotFound("No such ticket.")
    authorize_gate_staff(viewer, ticket.tenant_id, "ticket")
    if not _on_record(claims, ticket):
        return CheckInResult.refused(_not_issued())
    if session_id is not None and claims.session != session_id:
        return CheckInResult.refused(WrongSession(), ticket)
    async with deps.db.write() as session:
        claimed = await session.exec(
            update(Ticket)
            .where(col(Ticket.id) == ticket.id, col(Ticket.status) == TicketStatus.VALID)
            .values(status=TicketStatus.USED, updated_at=now)
        )
        current = await session.get(Ticket, ticket.id, populate_existing=True)
        assert current is not None
        if claimed.rowcount != 1:
            if current.status == TicketStatus.REVOKED:
                return CheckInResult.refused(TicketRevoked(), current)
            first = await _first_check_in(session, ticket.id)
            return CheckInResult.refused(_already(first), current, first)
        record = CheckIn(
            ticket_id=ticket.id,
            tenant_id=ticket.tenant_id,
            session_id=ticket.session_id,
            gate=gate,
            device_id=device_id,
            source=CheckInSource.ONLINE,
            scanned_at=now,
            recorded_at=now,
            checked_in_by=user_id,
        )
        session.add(record)
        await session.flush()
        await _emit_checked_in(session, current, record)
    return CheckInResult(ok=True, ticket=current, check_in=record)


def _clean_scans(scans: Sequence[OfflineScanInput], now: datetime) -> list[OfflineScanInput]:
    if len(scans) > MAX_OFFLINE_SCANS:
        raise BadUserInput(f"At most {MAX_OFFLINE_SCANS} scans per upload.", field="scans")
    cleaned = []
    for i, scan in enumerate(scans):
        where = f"scans[{i}]"
        device = validation.text(scan.device_id, field=f"{where}.deviceId", max_length=NAME_LENGTH)
        gate = validation.optional_text(scan.gate, field=f"{where}.gate", max_length=NAME_LENGTH)
        at = as_utc(scan.scanned_at)
        if at > now + CLOCK_SKEW:
            raise BadUserInput("A scan cannot be in the future.", field=f"{where}.scannedAt")
        cleaned.append(OfflineScanInput(scan.payload, device, at, gate))
    return cleaned


async def upload_offline_scans(
    *, deps: TicketDeps, viewer: Viewer, session_id: str, scans: Sequence[OfflineScanInput]
) -> list[CheckInResult]:
    """Record the scans a gate of ``session_id`` admitted while offline, one result per scan in
    order (see the module docstring). Each scan is its own transaction, so an upload cut short
    is simply uploaded again.

    Raises ``Forbidden``, ``NotFound`` (field ``sessionId``) and ``BadUserInput`` (naming the
    scan's field) before recording anything.
    """
    user_id = require_gate_staff(viewer)
    now = utcnow()
    cleaned = _clean_scans(scans, now)
    async with deps.db.read() as session:
        performance = await session.get(EventSession, session_id)
    if performance is None:
        raise NotFound("No such session.", field="sessionId")
    authorize_gate_staff(viewer, performance.tenant_id, "session", "sessionId")
    results = [await _offline_scan(deps, user_id, performance, scan) for scan in cleaned]
    ticket_ids = sorted({r.ticket.id for r in results if r.ticket is not None})
    if not ticket_ids:
        return results
    async with deps.db.read() as session:
        conflicted = set(
            (
                await session.exec(
                    select(CheckInConflict.ticket_id).where(
                        col(CheckInConflict.ticket_id).in_(ticket_ids)
                    )
                )
            ).all()
        )
    return [
        replace(r, conflict=r.ticket is not None and r.ticket.id in conflicted) for r in results
    ]


async def _offline_scan(
    deps: TicketDeps, user_id: str, performance: EventSession, scan: OfflineScanInput
) -> CheckInResult:
    try:
        claims = await _verify(deps, scan.payload, scan.scanned_at)
    except SignatureInvalid as refused:
        return CheckInResult.refused(refused)
    if claims.session != performance.id:
        return CheckInResult.refused(WrongSession())
    async with deps.db.write() as session:
        ticket = await by_sn(session, claims.sn, lock=True)
        if ticket is None or not _on_record(claims, ticket):
            return CheckInResult.refused(_not_issued())
        known = (
            await session.exec(
                select(OfflineScan).where(
                    OfflineScan.ticket_id == ticket.id,
                    OfflineScan.device_id == scan.device_id,
                    OfflineScan.scanned_at == scan.scanned_at,
                )
            )
        ).first()
        if known is not None:
            return await _replayed(session, ticket, known)
        row = OfflineScan(
            ticket_id=ticket.id,
            tenant_id=ticket.tenant_id,
            session_id=ticket.session_id,
            device_id=scan.device_id,
            gate=scan.gate,
            scanned_at=scan.scanned_at,
            uploaded_by=user_id,
        )
        if ticket.status == TicketStatus.REVOKED:
            row.outcome = ScanOutcome.REVOKED
            session.add(row)
            return CheckInResult.refused(TicketRevoked(), ticket)
        first = await _first_check_in(session, ticket.id)
        if first is None:
            return await _first_admission(session, ticket, row, user_id)
        return await _second_admission(session, ticket, row, first, user_id)


async def _first_admission(
    session: AsyncSession, ticket: Ticket, row: OfflineScan, user_id: str
) -> CheckInResult:
    now = utcnow()
    row.outcome = ScanOutcome.CHECKED_IN
    ticket.status, ticket.updated_at = TicketStatus.USED, now
    record = CheckIn(
        ticket_id=ticket.id,
        tenant_id=ticket.tenant_id,
        session_id=ticket.session_id,
        gate=row.gate,
        device_id=row.device_id,
        source=CheckInSource.OFFLINE,
        scanned_at=row.scanned_at,
        recorded_at=now,
        checked_in_by=user_id,
        offline_scan_id=row.id,
    )
    session.add_all([row, ticket, record])
    await session.flush()
    await _emit_checked_in(session, ticket, record)
    return CheckInResult(ok=True, ticket=ticket, check_in=record)


async def _second_admission(
    session: AsyncSession, ticket: Ticket, row: OfflineScan, first: CheckIn, user_id: str
) -> CheckInResult:
    """The ticket was admitted before: the earlier of the two stands as its check-in."""
    elsewhere = (first.device_id, first.gate) != (row.device_id, row.gate)
    row.outcome = ScanOutcome.CONFLICT if elsewhere else ScanOutcome.DUPLICATE
    earlier = row.scanned_at < first.scanned_at
    standing = (first.scanned_at, first.gate, first.device_id)
    later = (row.scanned_at, row.gate, row.device_id)
    if earlier:
        standing, later = later, standing
        if first.offline_scan_id is not None:
            displaced = await session.get(OfflineScan, first.offline_scan_id)
            if displaced is not None:
                displaced.outcome = row.outcome
                session.add(displaced)
        row.outcome = ScanOutcome.CHECKED_IN
        first.scanned_at, first.gate, first.device_id = row.scanned_at, row.gate, row.device_id
        first.source, first.offline_scan_id = CheckInSource.OFFLINE, row.id
        first.checked_in_by, first.recorded_at = user_id, utcnow()
        session.add(first)
    session.add(row)
    await session.flush()
    if elsewhere:
        conflict = CheckInConflict(
            tenant_id=ticket.tenant_id,
            session_id=ticket.session_id,
            ticket_id=ticket.id,
            ticket_sn=ticket.ticket_sn,
            first_at=standing[0],
            first_gate=standing[1],
            first_device_id=standing[2],
            second_at=later[0],
            second_gate=later[1],
            second_device_id=later[2],
            offline_scan_id=row.id,
        )
        session.add(conflict)
        await session.flush()
        await _emit_conflict(session, conflict)
    if earlier:
        return CheckInResult(ok=True, ticket=ticket, check_in=first)
    return CheckInResult.refused(_already(first), ticket, first)


async def _replayed(session: AsyncSession, ticket: Ticket, scan: OfflineScan) -> CheckInResult:
    """The answer to a scan uploaded before, from what it turned out to be."""
    if scan.outcome == ScanOutcome.REVOKED:
        return CheckInResult.refused(TicketRevoked(), ticket)
    first = await _first_check_in(session, ticket.id)
    if first is not None and first.offline_scan_id == scan.id:
        return CheckInResult(ok=True, ticket=ticket, check_in=first)
    return CheckInResult.refused(_already(first), ticket, first)


def conflict_resource(conflict: CheckInConflict, event_title: str | None) -> dict[str, Any]:
    def side(at: datetime, gate: str | None, device: str | None) -> dict[str, Any]:
        return {"at": at.isoformat(), "gate": gate, "deviceId": device}

    return {
        "id": conflict.id,
        "ticketId": conflict.ticket_id,
        "ticketSn": conflict.ticket_sn,
        "sessionId": conflict.session_id,
        "eventTitle": event_title,
        "first": side(conflict.first_at, conflict.first_gate, conflict.first_device_id),
        "second": side(conflict.second_at, conflict.second_gate, conflict.second_device_id),
        "createdAt": conflict.created_at.isoformat(),
    }


async def _emit_conflict(session: AsyncSession, conflict: CheckInConflict) -> None:
    title = (
        await session.exec(
            select(Event.title)
            .join(EventSession, col(EventSession.event_id) == col(Event.id))
            .where(EventSession.id == conflict.session_id)
        )
    ).first()
    outbox.emit(
        session,
        topic="ticket.check_in_conflict",
        aggregate_type="CheckInConflict",
        aggregate_id=conflict.id,
        tenant_id=conflict.tenant_id,
        payload={"resource": conflict_resource(conflict, title)},
    )


async def _session_for_organizer(db_session: AsyncSession, viewer: Viewer, session_id: str) -> str:
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    performance = await db_session.get(EventSession, session_id)
    if performance is None:
        raise NotFound("No such session.", field="sessionId")
    try:
        viewer.require_staff(performance.tenant_id, Role.ORGANIZER)
    except NotFound as exc:
        raise NotFound("No such session.", field="sessionId") from exc
    return performance.id


async def list_conflicts(
    *,
    deps: TicketDeps,
    viewer: Viewer,
    session_id: str,
    first: int | None = None,
    after: str | None = None,
) -> Page[CheckInConflict]:
    """A session's check-in conflicts, newest first: its tenant's ORGANIZERs and OPERATORs."""
    size = page_size(first)
    async with deps.db.read() as session:
        await _session_for_organizer(session, viewer, session_id)
        query = apply_keyset(
            select(CheckInConflict).where(CheckInConflict.session_id == session_id),
            CONFLICT_KEYS,
            after=after,
        )
        rows = (await session.exec(query.limit(size + 1))).all()
    return Page.from_rows(rows, CONFLICT_KEYS, size)


async def count_conflicts(*, deps: TicketDeps, viewer: Viewer, session_id: str) -> int:
    async with deps.db.read() as session:
        await _session_for_organizer(session, viewer, session_id)
        query = (
            select(func.count())
            .select_from(CheckInConflict)
            .where(CheckInConflict.session_id == session_id)
        )
        return int((await session.exec(query)).one())
