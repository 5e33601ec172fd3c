"""Holds: the rules in front of the seat ledger, and loading the ledger from the database.

``create_hold`` checks what the ledger cannot know (the sale window, the event's state, the
queue token, per-order limits, prices) and then asks the ledger for the seats or units in one
atomic step. The hold carries a price snapshot (in the ledger's opaque ``meta``) so the order
charges what the customer was shown.

The ledger is loaded from the database on first use and after Redis lost it
(``LedgerNotLoaded``): sold seats and unpaid orders come from live order items; channel
set-asides from allocations minus what their channel sold.

Sold-out fast path: after the ledger answers SOLD_OUT for a tier, this process watches the
session's availability stream for a while and answers SOLD_OUT for that tier from memory
while the stream says nothing is left — no Redis round trip. Without a stream it trusts the
answer for one second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson
from sqlmodel import col, select

from boxoffice.backends.codes import CodeStore
from boxoffice.backends.seat_ledger import (
    Hold,
    HoldRequest,
    LedgerNotLoaded,
    SeatLedger,
    SeatSpec,
    SessionSpec,
    Snapshot,
    Taken,
    TierSpec,
)
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import (
    BadUserInput,
    HoldNotFound,
    NotFound,
    QueueTokenInvalid,
    QueueTokenRequired,
    SoldOut,
)
from boxoffice.ids import new_id
from boxoffice.models.events import EventStatus, SessionStatus, TierStatus
from boxoffice.models.orders import ChannelAllocation, Order, OrderItem, OrderStatus
from boxoffice.services.availability_feed import AvailabilityFeeds
from boxoffice.services.catalog_access import sees_drafts_of
from boxoffice.services.queue_tokens import QueueTokenClaims, QueueTokens
from boxoffice.services.session_rules import SessionRules, SessionRulesCache
from boxoffice.services.viewer import Viewer

log = logging.getLogger("boxoffice.inventory")

PENDING_GRACE = timedelta(minutes=5)
SOLD_OUT_MEMORY_SECONDS = 1.0
SOLD_OUT_WATCH_SECONDS = 60.0
LIVE_ORDER_STATUSES = (
    OrderStatus.PENDING_PAYMENT,
    OrderStatus.PAID,
    OrderStatus.REFUNDING,
    OrderStatus.PARTIALLY_REFUNDED,
    OrderStatus.COMPLETED,
)
CLOSED_EVENT_STATUSES = frozenset({EventStatus.DRAFT, EventStatus.CANCELLED, EventStatus.ENDED})
CLOSED_SESSION_STATUSES = frozenset({SessionStatus.CANCELLED, SessionStatus.ENDED})


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def hold_token(session_id: str, hold_id: str) -> str:
    """The client's handle on a hold: it names the session, so no lookup table is needed.
    The hold is bound to its user; someone else's token is worthless to them."""
    return f"{session_id}.{hold_id}"


def parse_hold_token(token: str) -> tuple[str, str]:
    session_id, _, hold_id = token.strip().partition(".")
    if not session_id or not hold_id or len(token) > 120:
        raise HoldNotFound("This is not a hold token.")
    return session_id, hold_id


@dataclass(frozen=True, slots=True)
class HeldItem:
    tier_id: str
    tier_name: str
    quantity: int
    unit_price_minor: int

    @property
    def subtotal_minor(self) -> int:
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True, slots=True)
class HeldSeat:
    seat_id: str
    tier_id: str
    section: str
    row: str
    number: int
    label: str


@dataclass(frozen=True, slots=True)
class HoldView:
    token: str
    hold_id: str
    session_id: str
    event_id: str
    tenant_id: str
    user_id: str
    seats: tuple[HeldSeat, ...]
    items: tuple[HeldItem, ...]
    currency: str
    expires_at: datetime
    pending: bool
    channel: str | None = None  # a sales channel's hold (agents), from its allocation

    @property
    def total_minor(self) -> int:
        return sum(item.subtotal_minor for item in self.items)

    @property
    def quantity(self) -> int:
        return sum(item.quantity for item in self.items)


class SoldOutFlags:
    """Per process: tiers this process recently saw sold out (see the module docstring)."""

    def __init__(self, feeds: AvailabilityFeeds | None = None) -> None:
        self._feeds = feeds
        self._seen: dict[tuple[str, str], float] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._closing = asyncio.Event()

    def is_sold_out(self, session_id: str, tier_id: str) -> bool:
        if self._feeds is not None:
            known = self._feeds.known_available(session_id, tier_id)
            if known is not None:
                return known == 0
        seen = self._seen.get((session_id, tier_id))
        return seen is not None and time.monotonic() - seen < SOLD_OUT_MEMORY_SECONDS

    def mark(self, session_id: str, tier_id: str) -> None:
        self._seen[(session_id, tier_id)] = time.monotonic()
        if self._feeds is not None and session_id not in self._watches:
            self._watches[session_id] = asyncio.create_task(self._watch(session_id))

    async def _watch(self, session_id: str) -> None:
        assert self._feeds is not None
        try:
            async with self._feeds.watching(session_id):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), SOLD_OUT_WATCH_SECONDS)
        except Exception:
            log.warning("could not watch availability of %s", session_id, exc_info=True)
        finally:
            self._watches.pop(session_id, None)

    async def close(self) -> None:
        self._closing.set()
        for task in list(self._watches.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)


# -- loading the ledger from the database ----------------------------------------------------


async def build_specs(
    db: Database, rules_list: Sequence[SessionRules], *, now: datetime
) -> list[SessionSpec]:
    """Sessions as the database has them (the ledger's starting state), in two queries."""
    session_ids = [r.session_id for r in rules_list]
    if not session_ids:
        return []
    async with db.read() as session:
        allocations = (
            await session.exec(
                select(ChannelAllocation).where(col(ChannelAllocation.session_id).in_(session_ids))
            )
        ).all()
        rows = (
            await session.exec(
                select(Order, OrderItem)
                .join(OrderItem, col(OrderItem.order_id) == col(Order.id))
                .where(
                    col(Order.session_id).in_(session_ids),
                    col(Order.status).in_(LIVE_ORDER_STATUSES),
                    col(OrderItem.live).is_(True),
                )
            )
        ).all()
    orders_of: dict[str, dict[str, tuple[Order, list[OrderItem]]]] = defaultdict(dict)
    for order, item in rows:
        orders_of[order.session_id].setdefault(order.id, (order, []))[1].append(item)
    allocations_of: dict[str, list[ChannelAllocation]] = defaultdict(list)
    for allocation in allocations:
        allocations_of[allocation.session_id].append(allocation)
    return [
        _spec(rules, orders_of[rules.session_id], allocations_of[rules.session_id], now)
        for rules in rules_list
    ]


def _spec(
    rules: SessionRules,
    orders: dict[str, tuple[Order, list[OrderItem]]],
    allocations: list[ChannelAllocation],
    now: datetime,
) -> SessionSpec:
    seats_by_tier: dict[str, list[SeatSpec]] = defaultdict(list)
    for info in rules.seats.values():
        if info.tier_id is None:
            continue  # blocked outside every tier: never sellable, shown BLOCKED by the catalog
        seats_by_tier[info.tier_id].append(
            SeatSpec(
                seat_id=info.seat_id,
                tier_id=info.tier_id,
                section=info.section,
                row=info.row,
                number=info.number,
                x=info.x,
                y=info.y,
                blocked=info.blocked,
            )
        )
    sold_by_channel: dict[tuple[str, str], int] = defaultdict(int)
    taken: list[Taken] = []
    for order, items in orders.values():
        units: dict[str, int] = defaultdict(int)
        seat_ids = []
        for item in items:
            if item.seat_id:
                seat_ids.append(item.seat_id)
            else:
                units[item.tier_id] += 1
            if order.channel_code and order.status != OrderStatus.PENDING_PAYMENT:
                sold_by_channel[(item.tier_id, order.channel_code)] += 1
        pending = order.status == OrderStatus.PENDING_PAYMENT
        until = (order.expires_at or now) + PENDING_GRACE if pending else None
        taken.append(
            Taken(
                hold_id=order.hold_id,
                user_id=order.user_id or f"order:{order.id}",
                seat_ids=tuple(seat_ids),
                units=dict(units),
                sold=not pending,
                until_ms=ms(until) if until else 0,
            )
        )
    quotas: dict[str, dict[str, int]] = defaultdict(dict)
    for allocation in allocations:
        left = allocation.quantity - sold_by_channel[(allocation.tier_id, allocation.channel)]
        if left > 0:
            quotas[allocation.tier_id][allocation.channel] = left
    tiers = tuple(
        TierSpec(
            tier_id=tier.tier_id,
            capacity=len(seats_by_tier[tier.tier_id]) if tier.seated else tier.capacity,
            seated=tier.seated,
            quotas=quotas.get(tier.tier_id, {}),
        )
        for tier in rules.tiers.values()
    )
    return SessionSpec(
        session_id=rules.session_id,
        tiers=tiers,
        seats=tuple(spec for specs in seats_by_tier.values() for spec in specs),
        taken=tuple(taken),
    )


async def load_ledger(
    *, db: Database, ledger: SeatLedger, rules: SessionRules, force: bool = False
) -> int:
    """Load (or, with ``force``, rebuild) the session's ledger from the database."""
    now = utcnow()
    (spec,) = await build_specs(db, [rules], now=now)
    version = await ledger.load(spec, now_ms=ms(now), force=force)
    if force:
        log.info("rebuilt the seat ledger of session %s (version %s)", rules.session_id, version)
    return version


async def snapshots(
    *,
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    session_ids: Sequence[str],
    seats: bool = True,
) -> dict[str, Snapshot]:
    """Live availability of sessions (with every seat's state unless ``seats=False``),
    loading the ledgers that are missing in one batch of database reads. Raises ``NotFound``
    for an unknown session."""
    now = utcnow()
    out: dict[str, Snapshot] = {}
    missing: list[str] = []
    for session_id in session_ids:
        try:
            out[session_id] = await ledger.snapshot(session_id, now_ms=ms(now), seats=seats)
        except LedgerNotLoaded:
            missing.append(session_id)
    if missing:
        await _load_missing(db, ledger, rules_cache, missing, now)
        for session_id in missing:
            out[session_id] = await ledger.snapshot(session_id, now_ms=ms(utcnow()), seats=seats)
    return out


async def _load_missing(
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    session_ids: list[str],
    now: datetime,
) -> None:
    """Load ledgers of ``session_ids``, once per process even when sibling fields ask at the
    same moment (loads already under way are awaited, the rest loaded in one batch)."""
    inflight = rules_cache.ledger_loads
    waiting = [inflight[sid] for sid in session_ids if sid in inflight]
    mine = [sid for sid in session_ids if sid not in inflight]
    if mine:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for sid in mine:
            inflight[sid] = done
        try:
            rules = await rules_cache.get_many(mine)
            if any(sid not in rules for sid in mine):
                raise NotFound("No such session.", field="sessionId")
            for spec in await build_specs(db, [rules[sid] for sid in mine], now=now):
                await ledger.load(spec, now_ms=ms(now), force=False)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved: no warning when nobody else waits
            raise
        finally:
            for sid in mine:
                inflight.pop(sid, None)
    for future in waiting:
        await asyncio.shield(future)


async def snapshot(
    *, db: Database, ledger: SeatLedger, rules_cache: SessionRulesCache, session_id: str
) -> Snapshot:
    """The session's live availability (loading the ledger first if it has to)."""
    found = await snapshots(db=db, ledger=ledger, rules_cache=rules_cache, session_ids=[session_id])
    return found[session_id]


# -- holds -----------------------------------------------------------------------------------


def require_visible(rules: SessionRules, viewer: Viewer) -> None:
    """A draft event's sessions do not exist for those who may not see drafts: NOT_FOUND, as
    for an unknown id, rather than NOT_ON_SALE, which would confirm the id."""
    if rules.event_status is EventStatus.DRAFT and not sees_drafts_of(viewer, rules.tenant_id):
        raise NotFound("No such session.", field="sessionId")


def check_sale_open(rules: SessionRules, now: datetime) -> None:
    if (
        rules.event_status in CLOSED_EVENT_STATUSES
        or rules.session_status in CLOSED_SESSION_STATUSES
    ):
        raise BadUserInput("This session is not on sale.", field="sessionId", reason="NOT_ON_SALE")
    if now < rules.sale_starts_at:
        raise BadUserInput(
            "The sale for this session has not started.",
            field="sessionId",
            reason="SALE_NOT_STARTED",
            saleStartsAt=rules.sale_starts_at.isoformat(),
        )
    if now >= rules.sale_closes_at:
        raise BadUserInput(
            "The sale for this session has ended.", field="sessionId", reason="SALE_CLOSED"
        )


def _requested_units(
    rules: SessionRules,
    *,
    tier_id: str | None,
    quantity: int | None,
    seat_ids: list[str] | None,
    channel: str | None,
) -> dict[str, int]:
    """Units per tier the request asks for, validated against the catalog."""
    if seat_ids and (tier_id is not None and quantity):
        raise BadUserInput("Give seatIds, or tierId with quantity — not both.", field="seatIds")
    need: dict[str, int] = defaultdict(int)
    if seat_ids:
        if len(seat_ids) != len(set(seat_ids)):
            raise BadUserInput("A seat is listed twice.", field="seatIds")
        for seat_id in seat_ids:
            info = rules.seats.get(seat_id)
            if info is None or info.tier_id is None:
                raise BadUserInput(
                    "No such seat for sale in this session.", field="seatIds", seats=[seat_id]
                )
            need[info.tier_id] += 1
    else:
        if tier_id is None:
            raise BadUserInput("Give seatIds, or tierId with quantity.", field="tierId")
        if tier_id not in rules.tiers:
            raise BadUserInput("No such tier in this session.", field="tierId")
        if quantity is None or quantity <= 0:
            raise BadUserInput("quantity must be > 0", field="quantity")
        need[tier_id] = quantity
    for tid, n in need.items():
        tier = rules.tiers[tid]
        if tier.status == TierStatus.DISABLED or (tier.status == TierStatus.HIDDEN and not channel):
            raise BadUserInput(f"{tier.name} is not on sale.", field="tierId", tierId=tid)
        if n > tier.limit_per_order:
            raise BadUserInput(
                f"At most {tier.limit_per_order} of {tier.name} per order.",
                field="quantity" if not seat_ids else "seatIds",
                reason="ORDER_LIMIT",
            )
    return dict(need)


def _view(rules: SessionRules, hold: Hold) -> HoldView:
    meta = orjson.loads(hold.meta) if hold.meta else {}
    prices: dict[str, int] = meta.get("p") or {}
    names: dict[str, str] = meta.get("n") or {}
    items = tuple(
        HeldItem(
            tier_id=tier_id,
            tier_name=names.get(tier_id)
            or (rules.tiers[tier_id].name if tier_id in rules.tiers else ""),
            quantity=n,
            unit_price_minor=int(
                prices.get(
                    tier_id, rules.tiers[tier_id].price_minor if tier_id in rules.tiers else 0
                )
            ),
        )
        for tier_id, n in sorted(hold.units.items())
    )
    seats = []
    for seat_id, tier_id in hold.seats.items():
        info = rules.seats.get(seat_id)
        seats.append(
            HeldSeat(
                seat_id=seat_id,
                tier_id=tier_id,
                section=info.section if info else "",
                row=info.row if info else "",
                number=info.number if info else 0,
                label=info.label if info else seat_id,
            )
        )
    seats.sort(key=lambda s: (s.section, s.row, s.number))
    return HoldView(
        token=hold_token(hold.session_id, hold.hold_id),
        hold_id=hold.hold_id,
        session_id=hold.session_id,
        event_id=rules.event_id,
        tenant_id=rules.tenant_id,
        user_id=hold.user_id,
        seats=tuple(seats),
        items=items,
        currency=meta.get("c") or rules.currency,
        expires_at=datetime.fromtimestamp(hold.expires_at_ms / 1000, tz=rules.starts_at.tzinfo),
        pending=hold.state.value == "PENDING",
        channel=meta.get("ch"),
    )


async def create_hold(
    *,
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    sold_out: SoldOutFlags,
    queue_tokens: QueueTokens | None,
    codes: CodeStore | None,
    viewer: Viewer,
    session_id: str,
    tier_id: str | None = None,
    quantity: int | None = None,
    seat_ids: list[str] | None = None,
    queue_token: str | None = None,
    channel: str | None = None,
    allow_split: bool = False,
    ttl_seconds: int,
    enforce_sale_window: bool = True,
    holder_id: str | None = None,
) -> HoldView:
    """Hold seats (chosen, or the best available) or a general-admission quantity.

    Raises ``NotFound`` (session), ``BadUserInput`` (closed sale, limits, unknown seats or
    tiers — naming the field), ``QueueTokenRequired`` / ``QueueTokenInvalid`` (queue-enabled
    sessions), ``SoldOut``, ``SeatUnavailable``.
    """
    user_id = holder_id or viewer.require_user()
    rules = await rules_cache.get(session_id)
    now = utcnow()
    if enforce_sale_window:
        require_visible(rules, viewer)
        check_sale_open(rules, now)
    need = _requested_units(
        rules, tier_id=tier_id, quantity=quantity, seat_ids=seat_ids, channel=channel
    )
    if rules.queue_enabled and channel is None and enforce_sale_window:
        if not queue_token:
            raise QueueTokenRequired()
        if queue_tokens is None:
            raise QueueTokenInvalid(reason="FORGED")
        queue_tokens.verify(queue_token, user_id=user_id, event_id=rules.event_id)
    if channel is None and all(sold_out.is_sold_out(session_id, t) for t in need):
        raise SoldOut(available=0)
    meta = orjson.dumps(
        {
            "p": {t: rules.tiers[t].price_minor for t in need},
            "n": {t: rules.tiers[t].name for t in need},
            "c": rules.currency,
            "ch": channel,
        }
    ).decode()
    request = HoldRequest(
        hold_id=new_id(),
        user_id=user_id,
        ttl_ms=ttl_seconds * 1000,
        seat_ids=tuple(seat_ids or ()),
        tier_id=None if seat_ids else tier_id,
        quantity=0 if seat_ids else int(quantity or 0),
        channel=channel,
        user_limit=rules.purchase_limit,
        allow_split=allow_split,
        meta=meta,
    )
    spending: Awaitable[QueueTokenClaims] | None = None
    if (
        rules.queue_enabled
        and channel is None
        and enforce_sale_window
        and queue_tokens is not None
        and codes is not None
    ):
        # the token's spending goes out with the hold: one round trip for both, each a turn
        # of a busy event loop at an on-sale (see ``_unspend`` for the price)
        spending = queue_tokens.consume_soon(
            queue_token or "", codes=codes, user_id=user_id, event_id=rules.event_id
        )
    try:
        hold = await _with_ledger(
            db, ledger, rules, lambda: ledger.hold(session_id, request, now_ms=ms(now))
        )
    except BaseException as exc:
        if spending is not None:
            await asyncio.shield(_unspend(spending, queue_tokens, codes))
        if isinstance(exc, SoldOut) and channel is None:
            for t in need:
                sold_out.mark(session_id, t)
        raise
    if spending is not None:
        try:
            await spending
        except BaseException:
            # replayed meanwhile, or the store failed: no hold without a spent token
            await asyncio.shield(give_back(ledger, session_id, hold.hold_id))
            raise
    return _view(rules, hold)


async def _unspend(
    spending: Awaitable[QueueTokenClaims],
    queue_tokens: QueueTokens | None,
    codes: CodeStore | None,
) -> None:
    """The hold failed: the queue token spent with it is made usable again, so the buyer can
    try again (SOLD_OUT, a seat just taken, a limit). Of concurrent holds with one token
    exactly one still stands: a hold whose spending lost gives its seats back. The price of
    spending with the hold rather than after it: while a failed hold's spending is undone, a
    concurrent hold with the same token (the buyer's second tab) is refused REPLAYED."""
    try:
        claims = await spending
    except BaseException:
        return  # not spent by this request
    assert queue_tokens is not None
    assert codes is not None
    try:
        await queue_tokens.restore(claims, codes=codes)
    except Exception:
        log.warning("could not restore a queue token after a failed hold", exc_info=True)


async def give_back(ledger: SeatLedger, session_id: str, hold_id: str) -> bool:
    """Release a hold whose order ended (or whose work failed). A ledger that lost the
    session has nothing to give back — the hold went with it, and the rebuild from the
    database will not count an ended order — so that is not an error: False."""
    try:
        return await ledger.release(session_id, hold_id, now_ms=ms(utcnow()))
    except LedgerNotLoaded:
        return False


async def _with_ledger(db: Database, ledger: SeatLedger, rules: SessionRules, call):  # type: ignore[no-untyped-def]
    try:
        return await call()
    except LedgerNotLoaded:
        await load_ledger(db=db, ledger=ledger, rules=rules)
        return await call()


async def get_hold(
    *,
    db: Database,
    ledger: SeatLedger,
    rules_cache: SessionRulesCache,
    viewer: Viewer,
    token: str,
    rules: SessionRules | None = None,
) -> HoldView:
    """The caller's hold. Raises ``HoldExpired`` or ``HoldNotFound`` (also someone else's).
    ``rules``: the session's, read beforehand (a caller inside a transaction must not wait
    for another connection to read them)."""
    user_id = viewer.require_user()
    session_id, hold_id = parse_hold_token(token)
    if rules is None or rules.session_id != session_id:
        rules = await rules_cache.get(session_id)
    hold = await _with_ledger(
        db, ledger, rules, lambda: ledger.get(session_id, hold_id, now_ms=ms(utcnow()))
    )
    if hold.user_id != user_id:
        raise HoldNotFound()
    return _view(rules, hold)


async def release_hold(
    *, db: Database, ledger: SeatLedger, rules_cache: SessionRulesCache, viewer: Viewer, token: str
) -> bool:
    """Give the caller's hold back. A hold an order owns is released by cancelling the order."""
    hold = await get_hold(db=db, ledger=ledger, rules_cache=rules_cache, viewer=viewer, token=token)
    if hold.pending:
        raise BadUserInput("An order owns this hold; cancel the order instead.", field="token")
    return await ledger.release(hold.session_id, hold.hold_id, now_ms=ms(utcnow()))


# keep the module's public surface explicit
__all__ = [
    "HeldItem",
    "HeldSeat",
    "HoldView",
    "SoldOutFlags",
    "build_specs",
    "check_sale_open",
    "create_hold",
    "get_hold",
    "give_back",
    "hold_token",
    "load_ledger",
    "parse_hold_token",
    "release_hold",
    "require_visible",
    "snapshot",
]
