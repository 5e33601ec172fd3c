"""Root fields for the waitlist (候补)."""

from __future__ import annotations

import strawberry

from boxoffice.models.waitlist import WaitlistStatus
from boxoffice.schema.context import Info
from boxoffice.schema.waitlist import WaitlistEntry, WaitlistEntryConnection
from boxoffice.services import waitlist


@strawberry.type
class WaitlistQuery:
    @strawberry.field(description="The caller's waitlist entries, newest first.")
    async def my_waitlist(self, info: Info) -> list[WaitlistEntry]:
        entries, positions = await waitlist.my_waitlist(
            deps=info.context.rt.order_deps, viewer=await info.context.viewer()
        )
        return [WaitlistEntry.from_model(e, position=positions.get(e.id)) for e in entries]

    @strawberry.field(
        description="Organizers: a tier's waitlist in serving order (WAITING and OFFERED "
        "entries unless `status` says otherwise)."
    )
    async def waitlist(
        self,
        info: Info,
        tier_id: strawberry.ID,
        status: WaitlistStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> WaitlistEntryConnection:
        page, total = await waitlist.tier_waitlist(
            deps=info.context.rt.order_deps,
            viewer=await info.context.viewer(),
            tier_id=tier_id,
            status=status,
            first=first,
            after=after,
        )
        return WaitlistEntryConnection.of(
            page,
            lambda e: WaitlistEntry.from_model(e, owner=False),
            total=total,
            after=after,
        )


@strawberry.type
class WaitlistMutation:
    @strawberry.mutation(
        description="Wait for units of a sold-out tier; offered before the public when some "
        "come back. BAD_USER_INPUT (reason NOT_SOLD_OUT) while the tier still has units."
    )
    async def join_waitlist(
        self, info: Info, session_id: strawberry.ID, tier_id: strawberry.ID, quantity: int
    ) -> WaitlistEntry:
        deps = info.context.rt.order_deps
        entry = await waitlist.join_waitlist(
            deps=deps,
            viewer=await info.context.viewer(),
            session_id=session_id,
            tier_id=tier_id,
            quantity=quantity,
        )
        return WaitlistEntry.from_model(entry, position=await waitlist.position_of(deps, entry))

    @strawberry.mutation(
        description="Leave the waitlist (a standing offer passes to the next person). False "
        "when the entry had already ended."
    )
    async def leave_waitlist(self, info: Info, id: strawberry.ID) -> bool:
        return await waitlist.leave_waitlist(
            deps=info.context.rt.order_deps, viewer=await info.context.viewer(), entry_id=id
        )

    @strawberry.mutation(
        description="Organizers: move an entry up (higher first) or down its tier's line."
    )
    async def set_waitlist_priority(
        self, info: Info, id: strawberry.ID, priority: int
    ) -> WaitlistEntry:
        entry, positions = await waitlist.set_priority(
            deps=info.context.rt.order_deps,
            viewer=await info.context.viewer(),
            entry_id=id,
            priority=priority,
        )
        return WaitlistEntry.from_model(entry, position=positions.get(entry.id), owner=False)
