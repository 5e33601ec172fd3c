"""Root fields for holds and channel allocations."""

from __future__ import annotations

import strawberry

from boxoffice.errors import HoldExpired, HoldNotFound
from boxoffice.schema.context import Info
from boxoffice.schema.inventory import ChannelAllocation, CreateHoldInput, Hold
from boxoffice.services import channel_quotas, inventory


@strawberry.type
class InventoryQuery:
    @strawberry.field(description="The caller's hold (null once it has lapsed or was released).")
    async def hold(self, info: Info, token: str) -> Hold | None:
        rt = info.context.rt
        try:
            view = await inventory.get_hold(
                db=rt.db,
                ledger=rt.backends.ledger,
                rules_cache=rt.session_rules,
                viewer=await info.context.viewer(),
                token=token,
            )
        except (HoldNotFound, HoldExpired):
            return None
        return Hold.from_view(view)


@strawberry.type
class InventoryMutation:
    @strawberry.mutation(
        description="Hold chosen seats, a quantity of general admission, or the best available "
        "seats of a tier, for a few minutes (all or nothing)."
    )
    async def create_hold(self, info: Info, input: CreateHoldInput) -> Hold:
        rt = info.context.rt
        viewer = await info.context.viewer()
        if input.channel is not None:
            await channel_quotas.check_channel(
                db=rt.db,
                rules_cache=rt.session_rules,
                viewer=viewer,
                session_id=input.session_id,
                channel=input.channel,
            )
        view = await inventory.create_hold(
            db=rt.db,
            ledger=rt.backends.ledger,
            rules_cache=rt.session_rules,
            sold_out=rt.sold_out,
            queue_tokens=rt.queue_tokens,
            codes=rt.backends.codes,
            viewer=viewer,
            session_id=input.session_id,
            tier_id=input.tier_id,
            quantity=input.quantity,
            seat_ids=[str(s) for s in input.seat_ids] if input.seat_ids is not None else None,
            queue_token=input.queue_token,
            channel=input.channel,
            allow_split=input.allow_split,
            ttl_seconds=rt.settings.hold_ttl_seconds,
        )
        rt.metrics.count("hold")
        return Hold.from_view(view)

    @strawberry.mutation(description="Give a hold back before it lapses.")
    async def release_hold(self, info: Info, token: str) -> bool:
        rt = info.context.rt
        return await inventory.release_hold(
            db=rt.db,
            ledger=rt.backends.ledger,
            rules_cache=rt.session_rules,
            viewer=await info.context.viewer(),
            token=token,
        )

    @strawberry.mutation(
        description="AGENT (or the tenant's ORGANIZER): set aside units of a tier for a channel."
    )
    async def allocate_channel_quota(
        self,
        info: Info,
        session_id: strawberry.ID,
        tier_id: strawberry.ID,
        channel: str,
        quantity: int,
    ) -> ChannelAllocation:
        rt = info.context.rt
        row = await channel_quotas.allocate(
            db=rt.db,
            ledger=rt.backends.ledger,
            rules_cache=rt.session_rules,
            viewer=await info.context.viewer(),
            session_id=session_id,
            tier_id=tier_id,
            channel=channel,
            quantity=quantity,
        )
        return ChannelAllocation.from_model(row)
