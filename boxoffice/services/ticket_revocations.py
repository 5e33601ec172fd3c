"""Revoking tickets (refunds, re-issues) and each session's revocation list.

A revoked ticket's serial number goes on its session's revocation list, which gates download
in the scanner bundle; every revocation raises the session's revocation ``version`` in the
same transaction, so a gate can tell a fresher list. Revocations write ``ticket.revoked``
events; a re-issue also writes ``ticket.issued`` for the new ticket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.errors import AlreadyCheckedIn, NotFound, TicketRevoked
from boxoffice.models.events import EventSession
from boxoffice.models.identity import Role
from boxoffice.models.orders import Order, OrderItem
from boxoffice.models.tickets import RevocationVersion, Ticket, TicketStatus
from boxoffice.services import audit, outbox, validation
from boxoffice.services.ticket_issuance import emit_issued, new_ticket
from boxoffice.services.tickets import TicketDeps, ticket_resources
from boxoffice.services.viewer import Viewer

REISSUE_REASON = "reissued"
AUDITED_FIELDS = ("ticket_sn", "status", "revoke_reason")


async def bump_versions(session: AsyncSession, session_ids: Iterable[str]) -> None:
    """Raise the revocation version of each session by one (created at 1), in ``session``'s
    transaction; sessions in a fixed order so concurrent bumps cannot deadlock."""
    now = utcnow()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for session_id in sorted(set(session_ids)):
        statement = insert(RevocationVersion).values(
            session_id=session_id, version=1, updated_at=now
        )
        await session.exec(
            statement.on_conflict_do_update(
                index_elements=["session_id"],
                set_={"version": col(RevocationVersion.version) + 1, "updated_at": now},
            )
        )


async def revocation_version(session: AsyncSession, session_id: str) -> int:
    row = await session.get(RevocationVersion, session_id, populate_existing=True)
    return row.version if row else 0


async def revoked_sns(session: AsyncSession, session_id: str) -> list[str]:
    rows = await session.exec(
        select(Ticket.ticket_sn).where(
            Ticket.session_id == session_id, Ticket.status == TicketStatus.REVOKED
        )
    )
    return sorted(rows.all())


async def _emit_revoked(session: AsyncSession, tickets: Sequence[Ticket]) -> None:
    resources = await ticket_resources(session, tickets)
    for ticket in tickets:
        outbox.emit(
            session,
            topic="ticket.revoked",
            aggregate_type="Ticket",
            aggregate_id=ticket.id,
            tenant_id=ticket.tenant_id,
            payload={"resource": resources[ticket.id], "userId": ticket.user_id},
        )


async def revoke_tickets(
    session: AsyncSession, *, ticket_ids: Sequence[str], reason: str | None
) -> list[Ticket]:
    """Revoke tickets inside the caller's transaction (refunds call this): each one not yet
    revoked becomes REVOKED, goes on its session's revocation list (the version is raised)
    and gets a ``ticket.revoked`` event. Returns the tickets this call revoked; already
    revoked or unknown ids are skipped. The caller authorizes."""
    if not ticket_ids:
        return []
    revoked = (
        await session.exec(
            select(Ticket)
            .where(
                col(Ticket.id).in_(sorted(set(ticket_ids))),
                col(Ticket.status) != TicketStatus.REVOKED,
            )
            .order_by(col(Ticket.id))
            .with_for_update()
        )
    ).all()
    now = utcnow()
    for ticket in revoked:
        ticket.status, ticket.revoked_at, ticket.updated_at = TicketStatus.REVOKED, now, now
        ticket.revoke_reason = reason
        session.add(ticket)
    if not revoked:
        return []
    await session.flush()
    await bump_versions(session, (t.session_id for t in revoked))
    await _emit_revoked(session, revoked)
    return list(revoked)


async def reissue_ticket(
    *, deps: TicketDeps, viewer: Viewer, ticket_id: str, reason: str | None = None
) -> Ticket:
    """Replace a VALID ticket by a new one for the same unit (a leaked screenshot, a lost
    phone): the old one is revoked, the new one has a new serial number and nonce and is
    signed with the current key. The tenant's ORGANIZERs (and OPERATORs) only.

    Raises ``NotFound`` (field ``ticketId``), ``Forbidden``, ``TicketRevoked`` (already
    revoked), ``AlreadyCheckedIn`` (used), ``BadUserInput`` (reason too long).
    """
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    note = validation.optional_text(reason, field="reason", max_length=500)
    async with deps.db.write() as session:
        old = (
            await session.exec(select(Ticket).where(Ticket.id == ticket_id).with_for_update())
        ).first()
        if old is None:
            raise NotFound("No such ticket.", field="ticketId")
        try:
            viewer.require_staff(old.tenant_id, Role.ORGANIZER)
        except NotFound as exc:
            raise NotFound("No such ticket.", field="ticketId") from exc
        if old.status == TicketStatus.REVOKED:
            raise TicketRevoked("This ticket was already revoked.", ticketSn=old.ticket_sn)
        if old.status == TicketStatus.USED or old.order_item_id is None:
            raise AlreadyCheckedIn("A used ticket cannot be reissued.", ticketSn=old.ticket_sn)
        order = await session.get(Order, old.order_id)
        item = await session.get(OrderItem, old.order_item_id)
        performance = await session.get(EventSession, old.session_id)
        assert order is not None
        assert item is not None
        assert performance is not None
        before = audit.snapshot(old, AUDITED_FIELDS)
        now = utcnow()
        old.status, old.revoked_at, old.updated_at = TicketStatus.REVOKED, now, now
        old.revoke_reason = note or REISSUE_REASON
        old.order_item_id = None  # the item's ticket is now the new one
        session.add(old)
        await session.flush()
        fresh = await new_ticket(
            session,
            deps.keys,
            order=order,
            item=item,
            performance=performance,
            now=now,
            reissued_from=old.id,
        )
        await session.flush()
        await bump_versions(session, [old.session_id])
        await _emit_revoked(session, [old])
        await emit_issued(session, [fresh])
        audit.record(
            session,
            viewer=viewer,
            action="ticket.reissue",
            target_type="Ticket",
            target_id=old.id,
            tenant_id=old.tenant_id,
            before=before,
            after={**audit.snapshot(old, AUDITED_FIELDS), "reissuedAs": fresh.ticket_sn},
        )
    return fresh
