"""Channel allocations (配票): units of a tier set aside for an agent or partner channel.

The allocation row is the truth; the ledger keeps the remaining set-aside (allocation minus
what that channel has sold) so public holds cannot take those units while the channel can.
AGENT users allocate and sell through channels; ORGANIZERs of the tenant and OPERATORs may too.
"""

from __future__ import annotations

import re

from sqlmodel import col, func, select

from boxoffice.backends.seat_ledger import SeatLedger
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, Forbidden, NotFound
from boxoffice.models.identity import Role
from boxoffice.models.orders import ChannelAllocation, Order, OrderItem, OrderStatus
from boxoffice.services import audit, inventory
from boxoffice.services.session_rules import SessionRulesCache
from boxoffice.services.viewer import Viewer

CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SOLD_STATUSES = (
    OrderStatus.PAID,
    OrderStatus.REFUNDING,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.COMPLETED,
)


def _may_sell_channels(viewer: Viewer, tenant_id: str) -> None:
    """Agents, the tenant's organizers and operators; other tenants' organizers get NOT_FOUND,
    everyone else (gate staff included: a role that may never do this) FORBIDDEN."""
    viewer.require_user()
    if Role.AGENT in viewer.roles or viewer.can_staff(tenant_id, Role.ORGANIZER):
        return
    if viewer.tenants_with(Role.ORGANIZER):
        raise NotFound("No such session.", field="sessionId")
    raise Forbidden()


async def allocate(
    *,
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    viewer: Viewer,
    session_id: str,
    tier_id: str,
    channel: str,
    quantity: int,
) -> ChannelAllocation:
    """Set (not add) the channel's allocation. Raises ``SoldOut`` when the tier has fewer
    free units than asked, ``BadUserInput``, ``NotFound``, ``Forbidden``."""
    rules = await rules_cache.get(session_id)
    _may_sell_channels(viewer, rules.tenant_id)
    if tier_id not in rules.tiers:
        raise BadUserInput("No such tier in this session.", field="tierId")
    if not CHANNEL_NAME.match(channel):
        raise BadUserInput("channel is 1-64 of a-z, 0-9, _ and -", field="channel")
    if quantity < 0 or quantity > rules.tiers[tier_id].capacity:
        raise BadUserInput("quantity must be between 0 and the tier's capacity", field="quantity")
    now = utcnow()
    async with db.write() as session:
        sold = (
            await session.exec(
                select(func.count())
                .select_from(OrderItem)
                .join(Order, col(Order.id) == col(OrderItem.order_id))
                .where(
                    col(OrderItem.tier_id) == tier_id,
                    col(OrderItem.live).is_(True),
                    col(Order.channel_code) == channel,
                    col(Order.status).in_(SOLD_STATUSES),
                )
            )
        ).one()
        row = (
            await session.exec(
                select(ChannelAllocation).where(
                    ChannelAllocation.session_id == session_id,
                    ChannelAllocation.tier_id == tier_id,
                    ChannelAllocation.channel == channel,
                )
            )
        ).first()
        before = {"quantity": row.quantity} if row else None
        if row is None:
            row = ChannelAllocation(
                tenant_id=rules.tenant_id,
                session_id=session_id,
                tier_id=tier_id,
                channel=channel,
                quantity=quantity,
                allocated_by=viewer.user_id,
            )
        row.quantity, row.updated_at = quantity, now
        session.add(row)
        audit.record(
            session,
            viewer=viewer,
            action="inventory.allocate_channel",
            target_type="TicketTier",
            target_id=tier_id,
            tenant_id=rules.tenant_id,
            before=before,
            after={"channel": channel, "quantity": quantity, "sessionId": session_id},
        )
        remaining = max(0, quantity - int(sold))
        await inventory._with_ledger(
            db, ledger, rules, lambda: ledger.set_quota(session_id, tier_id, channel, remaining)
        )
    return row


async def check_channel(
    *, db: Database, rules_cache: SessionRulesCache, viewer: Viewer, session_id: str, channel: str
) -> None:
    """A hold through ``channel`` needs a seller of channels and an allocation for it."""
    rules = await rules_cache.get(session_id)
    _may_sell_channels(viewer, rules.tenant_id)
    async with db.read() as session:
        found = (
            await session.exec(
                select(ChannelAllocation.id).where(
                    ChannelAllocation.session_id == session_id, ChannelAllocation.channel == channel
                )
            )
        ).first()
    if found is None:
        raise BadUserInput("This channel has no allocation in this session.", field="channel")
