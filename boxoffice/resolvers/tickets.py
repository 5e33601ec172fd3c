"""Root fields for tickets, check-in, scanner bundles, re-issue and printing."""

from __future__ import annotations

import strawberry

from boxoffice.errors import NotFound
from boxoffice.models.tickets import TicketStatus
from boxoffice.schema.context import Info
from boxoffice.schema.tickets import (
    CheckInConflict,
    CheckInConflictConnection,
    CheckInResult,
    OfflineScanInput,
    PrintedTicket,
    ScannerBundle,
    Ticket,
    TicketConnection,
)
from boxoffice.services import (
    check_ins,
    scanner_bundles,
    ticket_delivery,
    ticket_revocations,
    tickets,
)


@strawberry.type
class TicketsQuery:
    @strawberry.field(
        description="A ticket: its holder's, or of a tenant the caller staffs (null otherwise)."
    )
    async def ticket(self, info: Info, id: strawberry.ID) -> Ticket | None:
        try:
            found = await tickets.get_ticket(
                db=info.context.rt.db, viewer=await info.context.viewer(), ticket_id=id
            )
        except NotFound:
            return None
        return Ticket.from_model(found)

    @strawberry.field(description="The caller's tickets, newest first.")
    async def my_tickets(
        self,
        info: Info,
        status: TicketStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> TicketConnection:
        db = info.context.rt.db
        viewer = await info.context.viewer()
        page = await tickets.my_tickets(
            db=db, viewer=viewer, status=status, first=first, after=after
        )
        return TicketConnection.of(
            page,
            Ticket.from_model,
            total=lambda: tickets.count_my_tickets(db=db, viewer=viewer, status=status),
            after=after,
        )

    @strawberry.field(
        description="Gate staff (CHECKIN, ORGANIZER) of the session's tenant: the public keys, "
        "revocation list and its version, to check tickets offline."
    )
    async def scanner_bundle(self, info: Info, session_id: strawberry.ID) -> ScannerBundle:
        bundle = await scanner_bundles.bundle_for_session(
            deps=info.context.rt.ticket_deps,
            viewer=await info.context.viewer(),
            session_id=session_id,
        )
        return ScannerBundle.of(bundle)

    @strawberry.field(
        description="The tenant's ORGANIZERs: tickets of the session admitted by two devices "
        "or gates, newest first."
    )
    async def check_in_conflicts(
        self,
        info: Info,
        session_id: strawberry.ID,
        first: int | None = None,
        after: str | None = None,
    ) -> CheckInConflictConnection:
        deps = info.context.rt.ticket_deps
        viewer = await info.context.viewer()
        page = await check_ins.list_conflicts(
            deps=deps, viewer=viewer, session_id=session_id, first=first, after=after
        )
        return CheckInConflictConnection.of(
            page,
            CheckInConflict.from_model,
            total=lambda: check_ins.count_conflicts(
                deps=deps, viewer=viewer, session_id=session_id
            ),
            after=after,
        )


@strawberry.type
class TicketsMutation:
    @strawberry.mutation(
        description="Gate staff (CHECKIN, ORGANIZER) of the ticket's tenant: admit the holder of "
        "`payload`, once. Ticket refusals are answered as `ok: false` with a `code`; pass "
        "`sessionId` to refuse tickets of other sessions."
    )
    async def check_in(
        self,
        info: Info,
        payload: str,
        gate: str | None = None,
        session_id: strawberry.ID | None = None,
        device_id: str | None = None,
    ) -> CheckInResult:
        result = await check_ins.check_in(
            deps=info.context.rt.ticket_deps,
            viewer=await info.context.viewer(),
            payload=payload,
            gate=gate,
            session_id=session_id,
            device_id=device_id,
        )
        return CheckInResult.of(result)

    @strawberry.mutation(
        description="Record the scans a gate admitted offline (one result per scan, in order). "
        "Uploading the same scans again changes nothing; the earliest scan of a ticket is its "
        "check-in; a ticket admitted by two devices or gates is reported as a conflict."
    )
    async def upload_offline_scans(
        self, info: Info, session_id: strawberry.ID, scans: list[OfflineScanInput]
    ) -> list[CheckInResult]:
        results = await check_ins.upload_offline_scans(
            deps=info.context.rt.ticket_deps,
            viewer=await info.context.viewer(),
            session_id=session_id,
            scans=[scan.to_service() for scan in scans],
        )
        return [CheckInResult.of(result) for result in results]

    @strawberry.mutation(
        description="The tenant's ORGANIZERs: replace a valid ticket by a new one (new serial "
        "number and signature); the old one is revoked. Returns the new ticket."
    )
    async def reissue_ticket(
        self, info: Info, ticket_id: strawberry.ID, reason: str | None = None
    ) -> Ticket:
        fresh = await ticket_revocations.reissue_ticket(
            deps=info.context.rt.ticket_deps,
            viewer=await info.context.viewer(),
            ticket_id=ticket_id,
            reason=reason,
        )
        return Ticket.from_model(fresh)

    @strawberry.mutation(
        description="AGENTs and the tenant's ORGANIZERs: print data for the orders' valid "
        "tickets, which are marked printed (a printed ticket prints again only once reissued)."
    )
    async def print_tickets(
        self, info: Info, order_ids: list[strawberry.ID]
    ) -> list[PrintedTicket]:
        printed = await ticket_delivery.print_tickets(
            deps=info.context.rt.ticket_deps,
            viewer=await info.context.viewer(),
            order_ids=[str(order_id) for order_id in order_ids],
        )
        return [PrintedTicket.of(data) for data in printed]

    @strawberry.mutation(
        description="Send the order's e-tickets to its buyer (e-mail and in-app): the buyer or "
        "the tenant's staff."
    )
    async def send_tickets(self, info: Info, order_id: strawberry.ID) -> bool:
        return await ticket_delivery.send_tickets(
            deps=info.context.rt.ticket_deps,
            viewer=await info.context.viewer(),
            order_id=order_id,
        )
