"""Event promotions: automatic discounts every order of an event gets (满减, or a percentage).

An event may run several promotions; an order gets the ONE that takes the most off its
subtotal (ties: the oldest), never several. Promotions come before coupons: a coupon's
minimum spend and percentage see the subtotal after the promotion (see ``discounts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, NotFound
from boxoffice.models.coupons import Promotion, PromotionKind, PromotionStatus
from boxoffice.models.events import Event
from boxoffice.models.identity import Role, Tenant
from boxoffice.services import audit, validation
from boxoffice.services.catalog_access import can_see_event, get_for_write
from boxoffice.services.discounts import promotion_discount
from boxoffice.services.pricing import Breakdown, PricingContext
from boxoffice.services.viewer import Viewer

AUDITED_FIELDS = (
    "event_id",
    "name",
    "kind",
    "threshold_minor",
    "amount_off_minor",
    "repeat",
    "percent_off_bp",
    "max_discount_minor",
    "valid_from",
    "valid_to",
    "status",
)
MAX_PROMOTIONS_PER_EVENT = 20


@dataclass(frozen=True)
class _Terms:
    threshold_minor: int
    amount_off_minor: int | None
    repeat: bool
    percent_off_bp: int | None
    max_discount_minor: int | None


def _terms(
    kind: PromotionKind,
    *,
    threshold: Decimal | None,
    amount_off: Decimal | None,
    repeat: bool,
    percent_off: Decimal | None,
    max_discount: Decimal | None,
) -> _Terms:
    """The promotion's numbers, validated for its kind."""
    if kind is PromotionKind.THRESHOLD:
        if threshold is None:
            raise BadUserInput("A THRESHOLD promotion needs a threshold.", field="threshold")
        if amount_off is None:
            raise BadUserInput("A THRESHOLD promotion needs amountOff.", field="amountOff")
        if percent_off is not None:
            raise BadUserInput("percentOff is for PERCENT promotions.", field="percentOff")
        threshold_minor = validation.amount_minor(threshold, field="threshold")
        off = validation.amount_minor(amount_off, field="amountOff")
        if off > threshold_minor:
            raise BadUserInput("amountOff must not exceed the threshold.", field="amountOff")
        cap = (
            validation.amount_minor(max_discount, field="maxDiscount")
            if max_discount is not None
            else None
        )
        if cap is not None and not repeat:
            raise BadUserInput("maxDiscount caps repeating promotions only.", field="maxDiscount")
        return _Terms(threshold_minor, off, repeat, None, cap)
    if percent_off is None:
        raise BadUserInput("A PERCENT promotion needs percentOff.", field="percentOff")
    if amount_off is not None:
        raise BadUserInput("amountOff is for THRESHOLD promotions.", field="amountOff")
    if repeat:
        raise BadUserInput("repeat is for THRESHOLD promotions.", field="repeat")
    return _Terms(
        threshold_minor=(
            validation.amount_minor(threshold, field="threshold", allow_zero=True)
            if threshold is not None
            else 0
        ),
        amount_off_minor=None,
        repeat=False,
        percent_off_bp=validation.percent_bp(percent_off, field="percentOff"),
        max_discount_minor=(
            validation.amount_minor(max_discount, field="maxDiscount")
            if max_discount is not None
            else None
        ),
    )


async def create_promotion(
    *,
    db: Database,
    viewer: Viewer,
    event_id: str,
    name: str,
    kind: PromotionKind,
    threshold: Decimal | None = None,
    amount_off: Decimal | None = None,
    repeat: bool = False,
    percent_off: Decimal | None = None,
    max_discount: Decimal | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
) -> Promotion:
    """ORGANIZER of the event's tenant (or OPERATOR). THRESHOLD: ``threshold`` and
    ``amountOff`` (``repeat``: for every full threshold, optionally capped by
    ``maxDiscount``); PERCENT: ``percentOff`` from an optional ``threshold``, capped by
    ``maxDiscount``. Another tenant's event answers NOT_FOUND."""
    title = validation.text(name, field="name", max_length=100)
    terms = _terms(
        kind,
        threshold=threshold,
        amount_off=amount_off,
        repeat=repeat,
        percent_off=percent_off,
        max_discount=max_discount,
    )
    valid_from, valid_to = validation.time_window(
        valid_from, valid_to, start_field="validFrom", end_field="validTo"
    )
    if valid_to is not None and valid_to <= utcnow():
        raise BadUserInput("validTo must be in the future.", field="validTo")
    async with db.write() as session:
        event = await get_for_write(session, Event, event_id, viewer=viewer, field="eventId")
        running = await _event_promotions(session, event.id, active_only=True)
        if len(running) >= MAX_PROMOTIONS_PER_EVENT:
            raise BadUserInput(
                f"At most {MAX_PROMOTIONS_PER_EVENT} active promotions per event.", field="eventId"
            )
        tenant = await session.get(Tenant, event.tenant_id)
        promotion = Promotion(
            tenant_id=event.tenant_id,
            event_id=event.id,
            name=title,
            kind=kind,
            currency=tenant.currency if tenant else "CNY",
            valid_from=valid_from,
            valid_to=valid_to,
            threshold_minor=terms.threshold_minor,
            amount_off_minor=terms.amount_off_minor,
            repeat=terms.repeat,
            percent_off_bp=terms.percent_off_bp,
            max_discount_minor=terms.max_discount_minor,
            created_by=viewer.user_id,
        )
        session.add(promotion)
        audit.record(
            session,
            viewer=viewer,
            action="promotion.create",
            target_type="Promotion",
            target_id=promotion.id,
            tenant_id=promotion.tenant_id,
            after=audit.snapshot(promotion, AUDITED_FIELDS),
        )
    return promotion


async def end_promotion(*, db: Database, viewer: Viewer, promotion_id: str) -> Promotion:
    """Stop a promotion for good (orders already placed keep their discount)."""
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)
    async with db.write() as session:
        promotion = await session.get(Promotion, promotion_id, with_for_update=True)
        if promotion is None or not viewer.can_staff(promotion.tenant_id, Role.ORGANIZER):
            raise NotFound("No such promotion.")
        before = audit.snapshot(promotion, AUDITED_FIELDS)
        if promotion.status is not PromotionStatus.ENDED:
            promotion.status = PromotionStatus.ENDED
            promotion.updated_at = utcnow()
            session.add(promotion)
            audit.record(
                session,
                viewer=viewer,
                action="promotion.end",
                target_type="Promotion",
                target_id=promotion.id,
                tenant_id=promotion.tenant_id,
                before=before,
                after=audit.snapshot(promotion, AUDITED_FIELDS),
            )
    return promotion


async def _event_promotions(
    session: AsyncSession, event_id: str, *, active_only: bool, now: datetime | None = None
) -> list[Promotion]:
    query = select(Promotion).where(Promotion.event_id == event_id)
    if active_only:
        query = query.where(col(Promotion.status) == PromotionStatus.ACTIVE)
    if now is not None:
        query = query.where(
            or_(col(Promotion.valid_from).is_(None), col(Promotion.valid_from) <= now),
            or_(col(Promotion.valid_to).is_(None), col(Promotion.valid_to) > now),
        )
    query = query.order_by(col(Promotion.created_at), col(Promotion.id))
    return list((await session.exec(query)).all())


async def list_promotions(*, db: Database, viewer: Viewer, event_id: str) -> list[Promotion]:
    """The event's promotions: all of them for its staff, the running ones for everyone
    else. An event the viewer cannot see answers NOT_FOUND."""
    async with db.read() as session:
        event = await session.get(Event, event_id)
        if event is None or not can_see_event(viewer, event):
            raise NotFound("No such event.", field="eventId")
        if viewer.can_staff(event.tenant_id, Role.ORGANIZER):
            return await _event_promotions(session, event.id, active_only=False)
        return await _event_promotions(session, event.id, active_only=True, now=utcnow())


async def best_promotion(
    session: AsyncSession,
    *,
    event_id: str,
    currency: str,
    subtotal_minor: int,
    now: datetime,
) -> tuple[Promotion, int] | None:
    """The running promotion of the event that takes the most off ``subtotal_minor``, with
    its discount; None when none takes anything off."""
    best: tuple[Promotion, int] | None = None
    for promotion in await _event_promotions(session, event_id, active_only=True, now=now):
        if promotion.currency != currency:
            continue
        discount = promotion_discount(promotion, subtotal_minor)
        if discount > 0 and (best is None or discount > best[1]):
            best = (promotion, discount)
    return best


async def promotion_step(context: PricingContext, breakdown: Breakdown) -> None:
    """The pricing step: the event's best promotion on the hold's subtotal."""
    found = await best_promotion(
        context.session,
        event_id=context.hold.event_id,
        currency=context.hold.currency,
        subtotal_minor=breakdown.subtotal_minor,
        now=utcnow(),
    )
    if found is not None:
        breakdown.promotion_id, breakdown.promotion_discount_minor = found[0].id, found[1]
