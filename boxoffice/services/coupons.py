"""Coupon templates: created, listed, paused, resumed and ended by staff.

Operators make platform coupons (any order) and may make any tenant's; a tenant's organizers
make their tenant's (scoped to the tenant, one of its events, or one ticket tier). Staff of
another tenant asking for a coupon get NOT_FOUND. Every change is audited in its transaction.

Each coupon has a unique code (generated, or chosen by staff) people can claim it with.
Status: ACTIVE; PAUSED stops claims and issues (coupons already held stay usable); ENDED is
final: no more claims, and coupons held but unused expire.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import AlreadyExists, BadUserInput, Forbidden, NotFound
from boxoffice.models.coupons import Coupon, CouponKind, CouponScope, CouponStatus
from boxoffice.models.events import Event, EventSession, TicketTier
from boxoffice.models.identity import Role, Tenant
from boxoffice.money import DEFAULT_CURRENCY
from boxoffice.services import audit, validation
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: easy to read out
CODE_LENGTH = 10
_CUSTOM_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,31}$")
MAX_TOTAL_QUANTITY = 10_000_000
MAX_PER_USER_LIMIT = 100
AUDITED_FIELDS = (
    "code",
    "name",
    "kind",
    "amount_off_minor",
    "percent_off_bp",
    "max_discount_minor",
    "min_spend_minor",
    "scope",
    "tenant_id",
    "event_id",
    "tier_id",
    "valid_from",
    "valid_to",
    "total_quantity",
    "per_user_limit",
    "stackable",
    "status",
)
PAGE_KEYS: list[SortKey[Coupon]] = [
    SortKey(col(Coupon.created_at), lambda c: c.created_at, "datetime", descending=True),
    SortKey(col(Coupon.id), lambda c: c.id, descending=True),
]
_TRANSITIONS = {
    CouponStatus.PAUSED: frozenset({CouponStatus.ACTIVE}),
    CouponStatus.ACTIVE: frozenset({CouponStatus.PAUSED}),
    CouponStatus.ENDED: frozenset({CouponStatus.ACTIVE, CouponStatus.PAUSED}),
}
_ACTIONS = {
    CouponStatus.PAUSED: "coupon.pause",
    CouponStatus.ACTIVE: "coupon.resume",
    CouponStatus.ENDED: "coupon.end",
}


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(code: str) -> str:
    return code.strip().upper()


@dataclass(frozen=True)
class _Target:
    scope: CouponScope
    tenant_id: str | None
    event_id: str | None
    tier_id: str | None
    currency: str


def can_manage(viewer: Viewer, coupon: Coupon) -> bool:
    """Operators manage every coupon; organizers their tenant's."""
    if viewer.is_operator:
        return True
    return coupon.tenant_id is not None and viewer.can_staff(coupon.tenant_id, Role.ORGANIZER)


def _require_tenant_staff(viewer: Viewer, tenant_id: str, field: str) -> None:
    try:
        viewer.require_staff(tenant_id, Role.ORGANIZER)
    except NotFound as exc:
        raise NotFound("Not found.", field=field) from exc


async def _target(
    session: AsyncSession,
    viewer: Viewer,
    *,
    tenant_id: str | None,
    event_id: str | None,
    tier_id: str | None,
) -> _Target:
    """Where a new coupon applies: the most specific of tier, event, tenant, else the
    platform (operators) or the organizer's only tenant."""
    resolved_event: str | None = None
    currency: str | None = None
    if tier_id is not None:
        tier = await session.get(TicketTier, tier_id)
        if tier is None:
            raise NotFound("No such ticket tier.", field="tierId")
        event_session = await session.get(EventSession, tier.session_id)
        if event_session is None:
            raise NotFound("No such ticket tier.", field="tierId")
        _require_tenant_staff(viewer, tier.tenant_id, "tierId")
        if event_id is not None and event_id != event_session.event_id:
            raise BadUserInput("The tier is not one of this event's.", field="tierId")
        owner, resolved_event, currency = tier.tenant_id, event_session.event_id, tier.currency
        scope = CouponScope.TIER
    elif event_id is not None:
        event = await session.get(Event, event_id)
        if event is None:
            raise NotFound("No such event.", field="eventId")
        _require_tenant_staff(viewer, event.tenant_id, "eventId")
        owner, resolved_event, scope = event.tenant_id, event.id, CouponScope.EVENT
    elif tenant_id is not None:
        _require_tenant_staff(viewer, tenant_id, "tenantId")
        owner, scope = tenant_id, CouponScope.TENANT
    elif viewer.is_operator:
        return _Target(CouponScope.PLATFORM, None, None, None, DEFAULT_CURRENCY)
    else:
        mine = viewer.tenants_with(Role.ORGANIZER)
        if not mine:
            raise Forbidden("Only operators create platform coupons.")
        if len(mine) > 1:
            raise BadUserInput("You work for several tenants: say which.", field="tenantId")
        owner, scope = next(iter(mine)), CouponScope.TENANT
    if tenant_id is not None and tenant_id != owner:
        raise BadUserInput(
            "The tier or event belongs to another tenant.",
            field="tierId" if tier_id else "eventId",
        )
    tenant = await session.get(Tenant, owner)
    if tenant is None:
        raise NotFound("No such tenant.", field="tenantId")
    return _Target(scope, owner, resolved_event, tier_id, currency or tenant.currency)


def _terms(
    kind: CouponKind, value: Decimal, max_discount: Decimal | None
) -> tuple[int | None, int | None, int | None]:
    """(amount off, percent off in basis points, cap), validated for the kind."""
    if kind is CouponKind.FIXED:
        if max_discount is not None:
            raise BadUserInput("maxDiscount caps PERCENT coupons only.", field="maxDiscount")
        return validation.amount_minor(value, field="value"), None, None
    bp = validation.percent_bp(value, field="value")
    cap = (
        validation.amount_minor(max_discount, field="maxDiscount")
        if max_discount is not None
        else None
    )
    return None, bp, cap


async def create_coupon(
    *,
    db: Database,
    viewer: Viewer,
    name: str,
    kind: CouponKind,
    value: Decimal,
    total_quantity: int,
    per_user_limit: int | None = None,
    min_spend: Decimal | None = None,
    max_discount: Decimal | None = None,
    tenant_id: str | None = None,
    event_id: str | None = None,
    tier_id: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    stackable: bool = True,
    code: str | None = None,
    description: str | None = None,
) -> Coupon:
    """A new ACTIVE coupon. FIXED: ``value`` off; PERCENT: ``value`` percent off, capped by
    ``maxDiscount``. Raises BAD_USER_INPUT (naming the field), FORBIDDEN (a platform coupon
    by a non-operator), NOT_FOUND (another tenant's tenant, event or tier), ALREADY_EXISTS
    (a chosen code in use)."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    title = validation.text(name, field="name", max_length=100)
    about = validation.optional_text(description, field="description", max_length=500)
    amount_off, percent_off, cap = _terms(kind, value, max_discount)
    quantity = validation.positive_int(
        total_quantity, field="totalQuantity", maximum=MAX_TOTAL_QUANTITY
    )
    limit = validation.positive_int(
        1 if per_user_limit is None else per_user_limit,
        field="perUserLimit",
        maximum=min(MAX_PER_USER_LIMIT, quantity),
    )
    spend = (
        validation.amount_minor(min_spend, field="minSpend", allow_zero=True)
        if min_spend is not None
        else 0
    )
    valid_from, valid_to = validation.time_window(
        valid_from, valid_to, start_field="validFrom", end_field="validTo"
    )
    if valid_to is not None and valid_to <= utcnow():
        raise BadUserInput("validTo must be in the future.", field="validTo")
    chosen = normalize_code(code) if code is not None else None
    if chosen is not None and not _CUSTOM_CODE.match(chosen):
        raise BadUserInput(
            "code must be 4-32 letters, digits or dashes, starting with a letter or digit.",
            field="code",
        )
    try:
        async with db.write() as session:
            target = await _target(
                session, viewer, tenant_id=tenant_id, event_id=event_id, tier_id=tier_id
            )
            coupon_code = await _free_code(session, chosen)
            coupon = Coupon(
                code=coupon_code,
                name=title,
                description=about,
                kind=kind,
                amount_off_minor=amount_off,
                percent_off_bp=percent_off,
                max_discount_minor=cap,
                min_spend_minor=spend,
                currency=target.currency,
                scope=target.scope,
                tenant_id=target.tenant_id,
                event_id=target.event_id,
                tier_id=target.tier_id,
                valid_from=valid_from,
                valid_to=valid_to,
                total_quantity=quantity,
                per_user_limit=limit,
                stackable=stackable,
                created_by=viewer.user_id,
            )
            session.add(coupon)
            audit.record(
                session,
                viewer=viewer,
                action="coupon.create",
                target_type="Coupon",
                target_id=coupon.id,
                tenant_id=coupon.tenant_id,
                after=audit.snapshot(coupon, AUDITED_FIELDS),
            )
    except IntegrityError as exc:  # a concurrent coupon took the same code
        raise AlreadyExists("This code is in use.", field="code") from exc
    return coupon


async def _free_code(session: AsyncSession, chosen: str | None) -> str:
    async def taken(code: str) -> bool:
        found = await session.exec(select(Coupon.id).where(Coupon.code == code))
        return found.first() is not None

    if chosen is not None:
        if await taken(chosen):
            raise AlreadyExists("This code is in use.", field="code")
        return chosen
    while await taken(code := new_code()):
        pass
    return code


async def managed_in(
    session: AsyncSession, viewer: Viewer, coupon_id: str, *, lock: bool
) -> Coupon:
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    coupon = await session.get(Coupon, coupon_id, with_for_update=lock, populate_existing=lock)
    if coupon is None or not can_manage(viewer, coupon):
        raise NotFound("No such coupon.")
    return coupon


async def managed_coupon(*, db: Database, viewer: Viewer, coupon_id: str) -> Coupon:
    """A coupon the viewer manages; NOT_FOUND otherwise (FORBIDDEN for non-staff)."""
    async with db.read() as session:
        return await managed_in(session, viewer, coupon_id, lock=False)


async def get_coupon(*, db: Database, coupon_id: str) -> Coupon | None:
    """Any coupon by id (its terms are public; its code is shown to its managers only)."""
    async with db.read() as session:
        return await session.get(Coupon, coupon_id)


async def set_status(
    *, db: Database, viewer: Viewer, coupon_id: str, status: CouponStatus
) -> Coupon:
    """Pause (ACTIVE → PAUSED), resume (PAUSED → ACTIVE) or end (→ ENDED, final). Asking for
    the status it already has changes nothing; anything else from ENDED is BAD_USER_INPUT."""
    async with db.write() as session:
        coupon = await managed_in(session, viewer, coupon_id, lock=True)
        if coupon.status is status:
            return coupon
        if coupon.status not in _TRANSITIONS[status]:
            raise BadUserInput(
                f"A {coupon.status.value} coupon cannot become {status.value}.",
                field="id",
                reason=coupon.status.value,
            )
        before = audit.snapshot(coupon, AUDITED_FIELDS)
        coupon.status, coupon.updated_at = status, utcnow()
        session.add(coupon)
        audit.record(
            session,
            viewer=viewer,
            action=_ACTIONS[status],
            target_type="Coupon",
            target_id=coupon.id,
            tenant_id=coupon.tenant_id,
            before=before,
            after=audit.snapshot(coupon, AUDITED_FIELDS),
        )
    return coupon


def _list_conditions(
    viewer: Viewer,
    *,
    tenant_id: str | None,
    status: CouponStatus | None,
    event_id: str | None,
) -> list[Any]:
    """Operators: a tenant's coupons, or the platform's without ``tenant_id``. Organizers:
    their tenant's (their only one by default); another tenant's answers NOT_FOUND."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    if tenant_id is not None:
        _require_tenant_staff(viewer, tenant_id, "tenantId")
        owner: str | None = tenant_id
    elif viewer.is_operator:
        owner = None
    else:
        mine = viewer.tenants_with(Role.ORGANIZER)
        if len(mine) != 1:
            raise BadUserInput("Say which tenant's coupons.", field="tenantId")
        owner = next(iter(mine))
    conditions: list[Any] = [
        col(Coupon.tenant_id).is_(None) if owner is None else col(Coupon.tenant_id) == owner
    ]
    if status is not None:
        conditions.append(col(Coupon.status) == status)
    if event_id is not None:
        conditions.append(col(Coupon.event_id) == event_id)
    return conditions


async def list_coupons(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str | None = None,
    status: CouponStatus | None = None,
    event_id: str | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Page[Coupon]:
    """Staff's list, newest first (see ``_list_conditions`` for whose)."""
    conditions = _list_conditions(viewer, tenant_id=tenant_id, status=status, event_id=event_id)
    size = page_size(first)
    query = apply_keyset(select(Coupon).where(*conditions), PAGE_KEYS, after=after)
    async with db.read() as session:
        rows = list((await session.exec(query.limit(size + 1))).all())
    return Page.from_rows(rows, PAGE_KEYS, size)


async def count_coupons(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str | None = None,
    status: CouponStatus | None = None,
    event_id: str | None = None,
) -> int:
    conditions = _list_conditions(viewer, tenant_id=tenant_id, status=status, event_id=event_id)
    async with db.read() as session:
        found = await session.exec(select(func.count()).select_from(Coupon).where(*conditions))
        return int(found.one())
