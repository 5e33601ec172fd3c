"""Refund rules: a tenant's, overridden per event, and what they make a refund cost.

The rules in force for an event are its own policy, else its tenant's, else the default (no
fee, refunds until 48 hours before the session). A policy says whether refunds are allowed
at all, the deadline (no refunds within ``deadline_hours`` of the session's start) and the
fee, by tiers of time before the show: the tier with the largest ``hoursBefore`` not above
the hours left applies (the nearest one when the show is closer than every tier). A tier's
fee is a percentage of what the refunded units cost plus a fixed amount per unit, rounded
down to the fen in the buyer's favour and never more than the cost.

A percentage-only or fixed-only policy is one tier with ``hoursBefore`` 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.models.events import Event
from boxoffice.models.identity import Role, Tenant
from boxoffice.models.refunds import RefundPolicy
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import can_see_event
from boxoffice.services.viewer import Viewer

DEFAULT_DEADLINE_HOURS = 48
MAX_DEADLINE_HOURS = 24 * 365
MAX_FEE_TIERS = 10
AUDITED_FIELDS = ("refundable", "deadline_hours", "fee_tiers")


class PolicySource(StrEnum):
    DEFAULT = "DEFAULT"
    TENANT = "TENANT"
    EVENT = "EVENT"


@dataclass(frozen=True, slots=True)
class FeeTier:
    hours_before: int
    percent_bp: int  # basis points of the cost (1 % = 100)
    fixed_minor: int  # per unit

    def fee(self, cost_minor: int, units: int) -> int:
        return min(cost_minor, cost_minor * self.percent_bp // 10_000 + self.fixed_minor * units)

    def as_json(self) -> dict[str, int]:
        return {
            "hoursBefore": self.hours_before,
            "percentBp": self.percent_bp,
            "fixedMinor": self.fixed_minor,
        }


@dataclass(frozen=True, slots=True)
class FeeTierSpec:
    """A tier as given by an organizer (decimal percent and amount)."""

    hours_before: int
    percent: Decimal = Decimal(0)
    fixed: Decimal = Decimal(0)


@dataclass(frozen=True)
class EffectivePolicy:
    tenant_id: str
    event_id: str | None  # set when the event's own policy is in force
    source: PolicySource
    refundable: bool
    deadline_hours: int
    fee_tiers: tuple[FeeTier, ...]  # largest hoursBefore first
    updated_at: datetime | None = None

    def deadline(self, starts_at: datetime) -> datetime:
        """The last moment a refund may be requested for a session starting at ``starts_at``."""
        return starts_at - timedelta(hours=self.deadline_hours)

    def tier_for(self, hours_left: float) -> FeeTier | None:
        for tier in self.fee_tiers:
            if tier.hours_before <= hours_left:
                return tier
        return self.fee_tiers[-1] if self.fee_tiers else None

    def fee(self, cost_minor: int, units: int, hours_left: float) -> int:
        tier = self.tier_for(hours_left)
        return tier.fee(cost_minor, units) if tier else 0


def _tiers(raw: Sequence[object]) -> tuple[FeeTier, ...]:
    tiers: list[FeeTier] = []
    for value in raw:
        if isinstance(value, dict):
            tiers.append(
                FeeTier(
                    int(value.get("hoursBefore", 0)),
                    int(value.get("percentBp", 0)),
                    int(value.get("fixedMinor", 0)),
                )
            )
    return tuple(sorted(tiers, key=lambda t: -t.hours_before))


def _effective(row: RefundPolicy | None, tenant_id: str) -> EffectivePolicy:
    if row is None:
        return EffectivePolicy(
            tenant_id, None, PolicySource.DEFAULT, True, DEFAULT_DEADLINE_HOURS, ()
        )
    return EffectivePolicy(
        tenant_id=row.tenant_id,
        event_id=row.event_id,
        source=PolicySource.EVENT if row.event_id else PolicySource.TENANT,
        refundable=row.refundable,
        deadline_hours=row.deadline_hours,
        fee_tiers=_tiers(row.fee_tiers),
        updated_at=row.updated_at,
    )


async def policy_for(
    session: AsyncSession, tenant_id: str, event_id: str | None
) -> EffectivePolicy:
    """The rules in force for ``event_id`` (or the tenant's own, without an event)."""
    scopes = [s for s in (event_id, tenant_id) if s]
    rows = {
        row.scope_id: row
        for row in (
            await session.exec(select(RefundPolicy).where(col(RefundPolicy.scope_id).in_(scopes)))
        ).all()
    }
    return _effective(rows.get(event_id or "") or rows.get(tenant_id), tenant_id)


def _fee_tiers(specs: Sequence[FeeTierSpec]) -> list[FeeTier]:
    if len(specs) > MAX_FEE_TIERS:
        raise BadUserInput(f"At most {MAX_FEE_TIERS} fee tiers.", field="feeTiers")
    tiers: list[FeeTier] = []
    seen: set[int] = set()
    for i, spec in enumerate(specs):
        field = f"feeTiers[{i}]"
        hours = validation.positive_int(
            spec.hours_before,
            field=f"{field}.hoursBefore",
            maximum=MAX_DEADLINE_HOURS,
            allow_zero=True,
        )
        if hours in seen:
            raise BadUserInput(
                "Two fee tiers start at the same hour.", field=f"{field}.hoursBefore"
            )
        seen.add(hours)
        percent_bp = (
            0
            if spec.percent == 0
            else validation.percent_bp(spec.percent, field=f"{field}.percent")
        )
        fixed = validation.amount_minor(spec.fixed, field=f"{field}.fixed", allow_zero=True)
        tiers.append(FeeTier(hours, percent_bp, fixed))
    return sorted(tiers, key=lambda t: -t.hours_before)


async def _scope(
    session: AsyncSession, viewer: Viewer, tenant_id: str | None, event_id: str | None
) -> tuple[str, str | None]:
    """The tenant and event a policy write names; NOT_FOUND for another tenant's."""
    if event_id:
        event = await session.get(Event, event_id)
        if event is None or (tenant_id and event.tenant_id != tenant_id):
            raise NotFound("No such event.", field="eventId")
        try:
            viewer.require_staff(event.tenant_id, Role.ORGANIZER)
        except NotFound as exc:
            raise NotFound("No such event.", field="eventId") from exc
        return event.tenant_id, event.id
    if not tenant_id:
        mine = viewer.tenants_with(Role.ORGANIZER)
        if len(mine) != 1:
            raise BadUserInput("Say which tenant.", field="tenantId")
        tenant_id = next(iter(mine))
    viewer.require_staff(tenant_id, Role.ORGANIZER)
    if await session.get(Tenant, tenant_id) is None:
        raise NotFound("No such tenant.", field="tenantId")
    return tenant_id, None


async def set_refund_policy(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str | None,
    event_id: str | None,
    refundable: bool,
    deadline_hours: int,
    fee_tiers: Sequence[FeeTierSpec],
) -> EffectivePolicy:
    """Set the tenant's refund rules, or one event's (with ``event_id``). The tenant's
    ORGANIZERs (and OPERATORs); other tenants' staff get NOT_FOUND. Audited."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    hours = validation.positive_int(
        deadline_hours, field="deadlineHours", maximum=MAX_DEADLINE_HOURS, allow_zero=True
    )
    tiers = _fee_tiers(fee_tiers)
    now = utcnow()
    async with db.write() as session:
        tenant, event = await _scope(session, viewer, tenant_id, event_id)
        scope_id = event or tenant
        row = (
            await session.exec(
                select(RefundPolicy).where(RefundPolicy.scope_id == scope_id).with_for_update()
            )
        ).first()
        before = audit.snapshot(row, AUDITED_FIELDS) if row else None
        if row is None:
            row = RefundPolicy(tenant_id=tenant, event_id=event, scope_id=scope_id, created_at=now)
        row.refundable, row.deadline_hours = refundable, hours
        row.fee_tiers = [t.as_json() for t in tiers]
        row.updated_by, row.updated_at = viewer.user_id, now
        session.add(row)
        audit.record(
            session,
            viewer=viewer,
            action="refund_policy.set",
            target_type="Event" if event else "Tenant",
            target_id=scope_id,
            tenant_id=tenant,
            before=before,
            after=audit.snapshot(row, AUDITED_FIELDS),
        )
    return _effective(row, tenant)


async def get_refund_policy(
    *, db: Database, viewer: Viewer, tenant_id: str | None, event_id: str | None
) -> EffectivePolicy:
    """The rules in force: for an event anyone who may see it (buyers read them before
    buying); a tenant's own for its ORGANIZERs (and OPERATORs): other tenants' staff get
    NOT_FOUND, everyone else FORBIDDEN."""
    async with db.read() as session:
        if event_id:
            event = await session.get(Event, event_id)
            if event is None or not can_see_event(viewer, event):
                raise NotFound("No such event.", field="eventId")
            if tenant_id and tenant_id != event.tenant_id:
                raise NotFound("No such event.", field="eventId")
            return await policy_for(session, event.tenant_id, event.id)
        tenant, _ = await _scope(session, viewer, tenant_id, None)
        return await policy_for(session, tenant, None)
