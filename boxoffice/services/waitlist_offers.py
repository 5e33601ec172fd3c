"""Waitlist offers: units that come back go to the waitlist before the public.

Where units come back from, and how they reach an offer without ever being AVAILABLE:

* a refund (sold units, ``offer_sold_units``): the ledger moves them from SOLD into one
  short-lived pool hold (``return_units(..., to=pool)``), which is then handed over;
* an unpaid order that expired or was cancelled (``hand_back_order_hold``, registered in
  ``orders.HAND_BACK_HOOKS``): the ended order's pending hold is handed over instead of
  released;
* an offer that lapsed (``expire_offers``, a job) or was given up (``leaveWaitlist``): its hold
  is handed over to the next people.

Handing over is one atomic ledger step (``SeatLedger.hand_over``): each offer's units go into
a hold in the waiting person's name, the rest back to the public.

Who gets an offer: per tier, the WAITING entries by priority (higher first) then join time;
the first whose quantity fits what is left gets it (a seated tier's entry gets any of the
returned seats of its tier), then the next, until nothing fits; the rest goes to the public.
People who let ``MAX_LAPSED_OFFERS`` offers lapse within ``LAPSE_WINDOW`` are skipped (and
cannot join) until the oldest lapse leaves the window.

Order of steps: the entries are claimed first (WAITING → OFFERED, a conditional update, so
two returns racing never offer one entry twice) and committed; then the ledger moves the
units; then ``waitlist.offered`` is written. A ledger refusal un-claims the entries. An offer's
ledger hold lives ``OFFER_HOLD_GRACE`` longer than ``offerExpiresAt``, so the expiry job, not
the ledger's own lapse, decides where the units go next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.seat_ledger import HoldRequest, LedgerNotLoaded
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, BoxofficeError, HoldExpired, HoldNotFound
from boxoffice.ids import new_id
from boxoffice.models.events import Event
from boxoffice.models.orders import ItemStatus, Order, OrderItem, OrderStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.waitlist import WaitlistEntry, WaitlistStatus
from boxoffice.services import outbox
from boxoffice.services.inventory import check_sale_open, hold_token, ms
from boxoffice.services.orders import HAND_BACK_HOOKS, OrderDeps
from boxoffice.services.outbox import Consumer
from boxoffice.services.session_rules import SessionRules

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.waitlist")

OFFER_TTL = timedelta(minutes=30)
OFFER_HOLD_GRACE = timedelta(minutes=10)
POOL_TTL = timedelta(seconds=60)
POOL_USER = "waitlist"
MAX_LAPSED_OFFERS = 3
LAPSE_WINDOW = timedelta(days=30)
CANDIDATES_PER_TIER = 200
PAID_STATUSES = frozenset(
    {
        OrderStatus.PAID,
        OrderStatus.REFUNDING,
        OrderStatus.PARTIALLY_REFUNDED,
        OrderStatus.REFUNDED,
        OrderStatus.COMPLETED,
    }
)


@dataclass
class Returned:
    """Units that came back: seats of seated tiers, counts of general-admission tiers."""

    seats: dict[str, list[str]] = field(default_factory=dict)  # tier -> seat ids
    units: dict[str, int] = field(default_factory=dict)  # tier -> units

    @classmethod
    def of_items(cls, items: Iterable[OrderItem]) -> Returned:
        returned = cls()
        for item in items:
            if item.seat_id:
                returned.seats.setdefault(item.tier_id, []).append(item.seat_id)
            else:
                returned.units[item.tier_id] = returned.units.get(item.tier_id, 0) + 1
        return returned

    @classmethod
    def of_offer(cls, entry: WaitlistEntry) -> Returned:
        if entry.offer_seat_ids:
            return cls(seats={entry.tier_id: list(entry.offer_seat_ids)})
        return cls(units={entry.tier_id: entry.quantity})

    @property
    def empty(self) -> bool:
        return not any(self.seats.values()) and not any(self.units.values())

    def seat_ids(self) -> tuple[str, ...]:
        return tuple(s for seats in self.seats.values() for s in seats)


@dataclass(frozen=True)
class Claim:
    """An entry claimed for an offer, and the hold the ledger is to make for it."""

    entry_id: str
    request: HoldRequest


def offer_token(entry: WaitlistEntry) -> str | None:
    """The offer's hold token (only while the offer stands)."""
    if entry.status is not WaitlistStatus.OFFERED or not entry.offer_hold_id:
        return None
    return hold_token(entry.session_id, entry.offer_hold_id)


def waitlist_resource(entry: WaitlistEntry, event_title: str | None = None) -> dict[str, Any]:
    """The entry as the API shows it (outbox payloads, webhooks) — never the offer's hold
    token: whoever could read a webhook must not be able to order with it."""
    return {
        "id": entry.id,
        "status": entry.status.value,
        "tenantId": entry.tenant_id,
        "eventId": entry.event_id,
        "eventTitle": event_title,
        "sessionId": entry.session_id,
        "tierId": entry.tier_id,
        "quantity": entry.quantity,
        "offerExpiresAt": entry.offer_expires_at.isoformat() if entry.offer_expires_at else None,
        "joinedAt": entry.joined_at.isoformat(),
    }


async def paused_users(
    session: AsyncSession, user_ids: Sequence[str], now: datetime
) -> dict[str, datetime]:
    """People who let too many offers lapse lately, with when they may wait again."""
    if not user_ids:
        return {}
    rows = await session.exec(
        select(
            WaitlistEntry.user_id,
            func.count(col(WaitlistEntry.id)),
            func.min(WaitlistEntry.offered_at),
        )
        .where(
            col(WaitlistEntry.user_id).in_(sorted(set(user_ids))),
            col(WaitlistEntry.status) == WaitlistStatus.EXPIRED,
            col(WaitlistEntry.offered_at) >= now - LAPSE_WINDOW,
        )
        .group_by(col(WaitlistEntry.user_id))
    )
    return {
        user_id: oldest + LAPSE_WINDOW
        for user_id, lapsed, oldest in rows.all()
        if lapsed >= MAX_LAPSED_OFFERS and oldest is not None
    }


def _meta(rules: SessionRules, tier_id: str) -> str:
    """The offer's price snapshot (the same shape ``create_hold`` keeps)."""
    tier = rules.tiers.get(tier_id)
    return orjson.dumps(
        {
            "p": {tier_id: tier.price_minor if tier else 0},
            "n": {tier_id: tier.name if tier else ""},
            "c": rules.currency,
            "ch": None,
        }
    ).decode()


async def _claim(
    deps: OrderDeps, session_id: str, returned: Returned, now: datetime
) -> list[Claim]:
    """Claim the entries that get the returned units (committed before the ledger moves)."""
    tiers = sorted(
        {t for t, s in returned.seats.items() if s} | {t for t, n in returned.units.items() if n}
    )
    if not tiers:
        return []
    rules = await deps.rules.get(session_id)
    try:
        check_sale_open(rules, now)
    except BadUserInput:
        return []  # a cancelled, ended or closed sale makes no offers
    expires_at = now + OFFER_TTL
    ttl_ms = int((OFFER_TTL + OFFER_HOLD_GRACE).total_seconds() * 1000)
    claims: list[Claim] = []
    async with deps.db.write() as session:
        for tier_id in tiers:
            seats = list(returned.seats.get(tier_id, []))
            left = len(seats) if seats else returned.units.get(tier_id, 0)
            candidates = (
                await session.exec(
                    select(WaitlistEntry)
                    .where(
                        WaitlistEntry.tier_id == tier_id,
                        WaitlistEntry.status == WaitlistStatus.WAITING,
                        col(WaitlistEntry.quantity) <= left,
                    )
                    .order_by(
                        col(WaitlistEntry.priority).desc(),
                        col(WaitlistEntry.joined_at),
                        col(WaitlistEntry.id),
                    )
                    .limit(CANDIDATES_PER_TIER)
                )
            ).all()
            paused = await paused_users(session, [e.user_id for e in candidates], now)
            for entry in candidates:
                if left == 0:
                    break
                if entry.quantity > left or entry.user_id in paused:
                    continue
                hold_id = new_id()
                mine = tuple(seats[: entry.quantity]) if seats else ()
                taken = await session.exec(
                    update(WaitlistEntry)
                    .where(
                        col(WaitlistEntry.id) == entry.id,
                        col(WaitlistEntry.status) == WaitlistStatus.WAITING,
                    )
                    .values(
                        status=WaitlistStatus.OFFERED,
                        offered_at=now,
                        offer_hold_id=hold_id,
                        offer_expires_at=expires_at,
                        offer_seat_ids=list(mine),
                        updated_at=now,
                    )
                )
                if taken.rowcount != 1:
                    continue
                seats, left = seats[entry.quantity :], left - entry.quantity
                claims.append(
                    Claim(
                        entry.id,
                        HoldRequest(
                            hold_id=hold_id,
                            user_id=entry.user_id,
                            ttl_ms=ttl_ms,
                            seat_ids=mine,
                            tier_id=None if mine else tier_id,
                            quantity=0 if mine else entry.quantity,
                            meta=_meta(rules, tier_id),
                        ),
                    )
                )
    return claims


async def _unclaim(db: Database, claims: Sequence[Claim]) -> None:
    """Put claimed entries back in line (the ledger did not make their holds)."""
    if not claims:
        return
    async with db.write() as session:
        for claim in claims:
            await session.exec(
                update(WaitlistEntry)
                .where(
                    col(WaitlistEntry.id) == claim.entry_id,
                    col(WaitlistEntry.status) == WaitlistStatus.OFFERED,
                    col(WaitlistEntry.offer_hold_id) == claim.request.hold_id,
                )
                .values(
                    status=WaitlistStatus.WAITING,
                    offered_at=None,
                    offer_hold_id=None,
                    offer_expires_at=None,
                    offer_seat_ids=[],
                    updated_at=utcnow(),
                )
            )


async def _announce(db: Database, claims: Sequence[Claim]) -> None:
    """``waitlist.offered`` for each offer the ledger made."""
    if not claims:
        return
    async with db.write() as session:
        entries = (
            await session.exec(
                select(WaitlistEntry).where(col(WaitlistEntry.id).in_([c.entry_id for c in claims]))
            )
        ).all()
        titles: dict[str, str] = {}
        for entry in entries:
            if entry.event_id not in titles:
                event = await session.get(Event, entry.event_id)
                titles[entry.event_id] = event.title if event else ""
            outbox.emit(
                session,
                topic="waitlist.offered",
                aggregate_type="WaitlistEntry",
                aggregate_id=entry.id,
                tenant_id=entry.tenant_id,
                payload={
                    "resource": waitlist_resource(entry, titles[entry.event_id]),
                    "userId": entry.user_id,
                },
            )
    log.info("offered returned units to %d waitlist entr(ies)", len(claims))


async def _pass_on(
    deps: OrderDeps,
    session_id: str,
    hold_id: str,
    claims: Sequence[Claim],
    *,
    only_held: bool,
    now: datetime,
) -> None:
    """Hand the hold over to the claimed offers (the rest to the public) and announce them.
    Raises what ``SeatLedger.hand_over`` raises, after un-claiming."""
    try:
        await deps.ledger.hand_over(
            session_id,
            hold_id,
            offers=tuple(c.request for c in claims),
            only_held=only_held,
            now_ms=ms(now),
        )
    except (BoxofficeError, LedgerNotLoaded):
        await _unclaim(deps.db, claims)
        raise
    await _announce(deps.db, claims)


async def offer_sold_units(
    deps: OrderDeps, *, session_id: str, buyer_id: str, returned: Returned
) -> int:
    """Refunded (sold) units come back: to waitlist offers first, the rest to the public.
    Returns how many offers were made. Raises what ``return_units`` raises when the ledger
    disagrees with the database (it was rebuilt meanwhile: the database's truth stands)."""
    if returned.empty:
        return 0
    now = utcnow()
    ledger = deps.ledger
    claims = await _claim(deps, session_id, returned, now)
    units = {t: n for t, n in returned.units.items() if n} or None
    if not claims:
        await ledger.return_units(
            session_id, user_id=buyer_id, seat_ids=returned.seat_ids(), units=units, now_ms=ms(now)
        )
        return 0
    pool = HoldRequest(
        hold_id=new_id(), user_id=POOL_USER, ttl_ms=int(POOL_TTL.total_seconds() * 1000)
    )
    try:
        await ledger.return_units(
            session_id,
            user_id=buyer_id,
            seat_ids=returned.seat_ids(),
            units=units,
            to=pool,
            now_ms=ms(now),
        )
    except BaseException:
        await asyncio.shield(_unclaim(deps.db, claims))
        raise
    try:
        await _pass_on(deps, session_id, pool.hold_id, claims, only_held=False, now=now)
    except (BoxofficeError, LedgerNotLoaded):
        log.warning("could not hand refunded units of %s to the waitlist", session_id)
        await ledger.release(session_id, pool.hold_id, now_ms=ms(utcnow()))
        return 0
    return len(claims)


async def _end_offer_of(session: AsyncSession, order: Order, now: datetime) -> None:
    """The offer this unpaid order was placed with lapses with it (it counts as a lapse)."""
    await session.exec(
        update(WaitlistEntry)
        .where(
            col(WaitlistEntry.offer_hold_id) == order.hold_id,
            col(WaitlistEntry.status) == WaitlistStatus.OFFERED,
        )
        .values(
            status=WaitlistStatus.EXPIRED,
            order_id=order.id,
            active_key=None,
            ended_at=now,
            updated_at=now,
        )
    )


async def hand_back_order_hold(deps: OrderDeps, order: Order, items: list[OrderItem]) -> bool:
    """``orders.HAND_BACK_HOOKS`` entry: an unpaid order ended (expired or cancelled) and its
    units go to the waitlist before the public. True when its ledger hold is taken care of
    (handed over, or already gone); False leaves the plain release to the caller."""
    now = utcnow()
    async with deps.db.write() as session:
        await _end_offer_of(session, order, now)
    if order.channel_code:
        return False  # a sales channel's units go back to its allocation
    returned = Returned.of_items(i for i in items if i.status is ItemStatus.RELEASED)
    claims = await _claim(deps, order.session_id, returned, now)
    if not claims:
        return False
    try:
        await _pass_on(deps, order.session_id, order.hold_id, claims, only_held=False, now=now)
    except (HoldExpired, HoldNotFound, LedgerNotLoaded):
        return True  # the hold was gone: its units are already back
    except BoxofficeError as exc:
        log.warning("could not hand order %s's units to the waitlist: %s", order.id, exc)
        return False
    return True


async def _settle(
    session: AsyncSession,
    entry_id: str,
    hold_id: str,
    status: WaitlistStatus,
    *,
    order_id: str | None = None,
    now: datetime,
) -> bool:
    """End an offer (FULFILLED, EXPIRED, LEFT) if it still stands."""
    values: dict[str, Any] = {
        "status": status,
        "active_key": None,
        "ended_at": now,
        "updated_at": now,
    }
    if order_id is not None:
        values["order_id"] = order_id
    result = await session.exec(
        update(WaitlistEntry)
        .where(
            col(WaitlistEntry.id) == entry_id,
            col(WaitlistEntry.status) == WaitlistStatus.OFFERED,
            col(WaitlistEntry.offer_hold_id) == hold_id,
        )
        .values(**values)
    )
    return result.rowcount == 1


async def pass_on_offer(
    deps: OrderDeps, entry: WaitlistEntry, *, outcome: WaitlistStatus, now: datetime
) -> bool:
    """End a standing offer (lapsed: EXPIRED, given up: LEFT) and hand its hold to the next
    people. False when an order owns the hold (placed with the offer: it stands)."""
    assert entry.offer_hold_id is not None
    claims = await _claim(deps, entry.session_id, Returned.of_offer(entry), now)
    try:
        await _pass_on(deps, entry.session_id, entry.offer_hold_id, claims, only_held=True, now=now)
    except BadUserInput as exc:
        if exc.details.get("reason") == "HOLD_ORDERED":
            return False
        log.warning("offer %s could not be passed on: %s", entry.id, exc)
    except (HoldExpired, HoldNotFound, LedgerNotLoaded):
        pass  # its units already went back
    async with deps.db.write() as session:
        await _settle(session, entry.id, entry.offer_hold_id, outcome, now=now)
    return True


async def expire_offers(deps: OrderDeps, *, limit: int = 100) -> int:
    """The job: offers past ``offerExpiresAt`` pass to the next people. An offer whose order
    is still unpaid waits for that order (its end hands the units on); one whose order was
    paid is FULFILLED. Returns how many offers lapsed."""
    now = utcnow()
    async with deps.db.read() as session:
        due = (
            await session.exec(
                select(WaitlistEntry)
                .where(
                    WaitlistEntry.status == WaitlistStatus.OFFERED,
                    col(WaitlistEntry.offer_expires_at) <= now,
                    col(WaitlistEntry.order_id).is_(None),
                )
                .order_by(col(WaitlistEntry.offer_expires_at))
                .limit(limit)
            )
        ).all()
        holds = [e.offer_hold_id for e in due if e.offer_hold_id]
        orders = (
            {
                o.hold_id: o
                for o in (
                    await session.exec(select(Order).where(col(Order.hold_id).in_(holds)))
                ).all()
            }
            if holds
            else {}
        )
    lapsed = 0
    for entry in due:
        assert entry.offer_hold_id is not None
        order = orders.get(entry.offer_hold_id)
        if order is not None:
            await _follow_order(deps.db, entry, order, now)
            continue
        if await pass_on_offer(deps, entry, outcome=WaitlistStatus.EXPIRED, now=now):
            lapsed += 1
    return lapsed


async def _follow_order(db: Database, entry: WaitlistEntry, order: Order, now: datetime) -> None:
    assert entry.offer_hold_id is not None
    async with db.write() as session:
        if order.status in PAID_STATUSES:
            await _settle(
                session,
                entry.id,
                entry.offer_hold_id,
                WaitlistStatus.FULFILLED,
                order_id=order.id,
                now=now,
            )
        elif order.status is OrderStatus.PENDING_PAYMENT:
            await session.exec(
                update(WaitlistEntry)
                .where(col(WaitlistEntry.id) == entry.id)
                .values(order_id=order.id, updated_at=now)
            )
        else:
            await _settle(
                session,
                entry.id,
                entry.offer_hold_id,
                WaitlistStatus.EXPIRED,
                order_id=order.id,
                now=now,
            )


async def fulfil_offer(db: Database, order_id: str) -> bool:
    """An order was paid: if it was placed with an offer, the offer is FULFILLED."""
    now = utcnow()
    async with db.write() as session:
        order = await session.get(Order, order_id)
        if order is None or order.status not in PAID_STATUSES:
            return False
        entry = (
            await session.exec(
                select(WaitlistEntry).where(WaitlistEntry.offer_hold_id == order.hold_id)
            )
        ).first()
        if entry is None:
            return False
        return await _settle(
            session, entry.id, order.hold_id, WaitlistStatus.FULFILLED, order_id=order.id, now=now
        )


def fulfilment_consumer() -> Consumer:
    """Marks an offer FULFILLED when the order placed with it is paid (``order.paid``)."""

    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        await fulfil_offer(rt.db, event.aggregate_id)

    return Consumer("waitlist-fulfilment", handle, topics=frozenset({"order.paid"}))


HAND_BACK_HOOKS.append(hand_back_order_hold)
