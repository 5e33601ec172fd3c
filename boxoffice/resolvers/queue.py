"""Root fields of the waiting room (join, status, leave, the rate) and its blacklist."""

from __future__ import annotations

import strawberry

from boxoffice.models.blacklist import BlacklistKind
from boxoffice.schema.catalog import Event
from boxoffice.schema.context import Info
from boxoffice.schema.queue import AddToBlacklistInput, BlacklistEntry, QueueTicket
from boxoffice.services import blacklist, queue_events, waiting_room


@strawberry.type
class QueueQuery:
    @strawberry.field(description="Your ticket in the event's waiting room (null if not in it).")
    async def queue_status(self, info: Info, event_id: strawberry.ID) -> QueueTicket | None:
        rt = info.context.rt
        viewer = await info.context.viewer()
        user_id = viewer.require_user()
        event = await rt.queue_events.get(event_id, viewer=viewer)
        ticket = await waiting_room.queue_status(
            room=rt.backends.waiting_room,
            tokens=rt.queue_tokens,
            user_id=user_id,
            event_id=event.event_id,
            admit_per_second=event.admit_per_second(rt.settings.queue_admit_per_second),
        )
        return QueueTicket.from_ticket(ticket) if ticket is not None else None

    @strawberry.field(description="OPERATOR: the blacklist, newest first.")
    async def blacklist(
        self, info: Info, kind: BlacklistKind | None = None, first: int | None = 100
    ) -> list[BlacklistEntry]:
        rows = await blacklist.list_entries(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            kind=kind,
            limit=first if first is not None else 100,
        )
        return [BlacklistEntry.from_model(row) for row in rows]


@strawberry.type
class QueueMutation:
    @strawberry.mutation(
        description="Join the event's waiting room, or get your place back (one per user and "
        "event). Refused for blacklisted users, devices and IPs (FORBIDDEN), too many attempts "
        "(RATE_LIMITED), and once the event is sold out (SOLD_OUT)."
    )
    async def join_queue(
        self, info: Info, event_id: strawberry.ID, device_id: str | None = None
    ) -> QueueTicket:
        context = info.context
        rt = context.rt
        viewer = await context.viewer()
        user_id = viewer.require_user()
        event = queue_events.require_joinable(await rt.queue_events.find(event_id), viewer=viewer)
        rt.session_rules.warm_event(event.event_id)  # this process's buyers will hold
        ticket = await waiting_room.join_queue(
            db=rt.db,
            room=rt.backends.waiting_room,
            rate_limiter=rt.backends.rate_limiter,
            codes=rt.backends.codes,
            tokens=rt.queue_tokens,
            user_id=user_id,
            event_id=event.event_id,
            device_id=device_id,
            ip=context.client_ip,
            admit_per_second=event.admit_per_second(rt.settings.queue_admit_per_second),
        )
        return QueueTicket.from_ticket(ticket)

    @strawberry.mutation(
        description="Give up your waiting place (false if you had none to give up; an "
        "admission cannot be given back for another)."
    )
    async def leave_queue(self, info: Info, event_id: strawberry.ID) -> bool:
        user_id = (await info.context.viewer()).require_user()
        return await waiting_room.leave_queue(
            room=info.context.rt.backends.waiting_room, user_id=user_id, event_id=event_id
        )

    @strawberry.mutation(
        description="ORGANIZER of the event's tenant: how many users per second its waiting "
        "room admits (every session of the event); null returns to the platform default."
    )
    async def set_queue_rate(
        self, info: Info, event_id: strawberry.ID, admit_per_second: int | None
    ) -> Event:
        rt = info.context.rt
        event = await queue_events.set_queue_rate(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=await info.context.viewer(),
            event_id=event_id,
            admit_per_second=admit_per_second,
        )
        return Event.from_model(event)

    @strawberry.mutation(description="OPERATOR: refuse a user, device id or IP in waiting rooms.")
    async def add_to_blacklist(self, info: Info, input: AddToBlacklistInput) -> BlacklistEntry:
        rt = info.context.rt
        row = await blacklist.add_entry(
            db=rt.db,
            codes=rt.backends.codes,
            viewer=await info.context.viewer(),
            kind=input.kind,
            value=input.value,
            reason=input.reason,
        )
        return BlacklistEntry.from_model(row)

    @strawberry.mutation(description="OPERATOR: take an entry off the blacklist.")
    async def remove_from_blacklist(self, info: Info, id: strawberry.ID) -> bool:
        rt = info.context.rt
        return await blacklist.remove_entry(
            db=rt.db, codes=rt.backends.codes, viewer=await info.context.viewer(), entry_id=id
        )
