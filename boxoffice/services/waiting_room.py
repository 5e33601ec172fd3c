"""The waiting room's rules: who may join, what a ticket says, and the live position stream.

Framework-free: every function takes the backends it needs explicitly. What needs the catalog
(does the event exist, is it queue-enabled and on sale, its admission rate) and who is frozen
are the caller's business; the caller passes the event's ``admit_per_second``.

Positions: a waiting entry's ``position`` is ``seq - watermark`` (1 = next in), ``ahead`` is
``position - 1``; both are null in the pre-queue (before the sale opens the order is not drawn
yet). Entries that left are still counted until the watermark passes them, so a position is an
upper bound and never increases. ``estimatedWaitSeconds`` is ``ceil(ahead / admit_per_second)``:
the seconds the admission ticker needs to let everyone ahead in at the event's rate (also an
upper bound, for the same reason; about one tick more for the entry itself).

The ticker publishes ONE ``QueueBroadcast`` per event per tick on ``channels.queue(event_id)``;
``watch_position`` turns it into each subscriber's own position without reading the backend,
except once at opening (to learn the drawn place) and once at admission (to get the token).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import orjson

from boxoffice.backends.broker import RESYNC, URGENT, Broker, channels
from boxoffice.backends.codes import CodeStore
from boxoffice.backends.rate_limits import RateLimiter
from boxoffice.backends.waiting_room import (
    EntryStatus,
    Lane,
    QueueClosed,
    QueueEntry,
    QueueState,
    WaitingRoom,
)
from boxoffice.db import Database
from boxoffice.errors import Forbidden, NotFound, RateLimited, SoldOut
from boxoffice.services import blacklist, risk, validation
from boxoffice.services.queue_tokens import QueueTokens

# (rate-limit key prefix, limit, window seconds) for joinQueue attempts.
USER_LIMIT = ("queue:join:user", 10, 60.0)
DEVICE_LIMIT = ("queue:join:device", 20, 60.0)
IP_LIMIT = ("queue:join:ip", 120, 60.0)


# ``watch_position``: how often the front of the line hears, and how often the rest
NEAR_SECONDS = 10  # within this many seconds of admissions (position ≤ rate × NEAR_SECONDS)
# the front hears its place at most this often, however fast the ticker ticks; a tick up to a
# tenth of it early still counts (ticks jitter)
NEAR_REFRESH_SECONDS = 1.0
FAR_REFRESH_SECONDS = 15.0
# the far end hears its drawn place in this many groups (place mod FAR_GROUPS), one
# FAR_REFRESH_SECONDS / FAR_GROUPS apart; group 0 at the draw itself
FAR_GROUPS = 15
# ... and that the line closed (sold out) in the same groups over this many seconds, on the
# ticks that keep saying so; the front and the pre-queue hear at once
CLOSE_SPREAD_SECONDS = 3.0


@dataclass(frozen=True, slots=True)
class QueueTicket:
    """What ``joinQueue``, ``queueStatus`` and ``queuePosition`` answer (API ``QueueTicket``).
    ``queue_token`` and ``expires_at`` (the token's expiry) only when ADMITTED."""

    event_id: str
    status: EntryStatus
    position: int | None
    ahead: int | None
    estimated_wait_seconds: int | None
    queue_token: str | None = None
    expires_at: datetime | None = None
    # when the line was as this ticket says (epoch seconds): the admission tick it reflects,
    # or the read it came from; 0 when unknown. Not part of equality: the same place read twice
    # is the same ticket
    as_of: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class QueueBroadcast:
    """The one message per event per tick. JSON on ``channels.queue(event_id)``::

        {"v": 1, "eventId": "…", "state": "PENDING|OPEN|CLOSED", "watermark": 1234,
         "admitPerSecond": 50, "at": 1767225600123}

    ``watermark`` is the highest sequence number admitted so far (never decreases);
    ``at`` is the tick's time in epoch milliseconds.
    """

    event_id: str
    state: QueueState
    watermark: int
    admit_per_second: int
    at: float

    def to_json(self) -> str:
        return orjson.dumps(
            {
                "v": 1,
                "eventId": self.event_id,
                "state": str(self.state),
                "watermark": self.watermark,
                "admitPerSecond": self.admit_per_second,
                "at": round(self.at * 1000),
            }
        ).decode()

    @classmethod
    def from_json(cls, raw: str) -> QueueBroadcast:
        data = orjson.loads(raw)
        return cls(
            event_id=str(data["eventId"]),
            state=QueueState(data["state"]),
            watermark=int(data["watermark"]),
            admit_per_second=int(data["admitPerSecond"]),
            at=int(data["at"]) / 1000,
        )


@functools.lru_cache(maxsize=16)
def parse_broadcast(raw: str) -> QueueBroadcast:
    """``QueueBroadcast.from_json``, once per message and process: every subscriber of the
    event is handed the same string."""
    return QueueBroadcast.from_json(raw)


def estimated_wait_seconds(ahead: int, admit_per_second: int) -> int:
    return math.ceil(ahead / max(1, admit_per_second))


def waiting_ticket(
    event_id: str, position: int | None, admit_per_second: int, *, as_of: float = 0.0
) -> QueueTicket:
    if position is None:
        return QueueTicket(event_id, EntryStatus.WAITING, None, None, None, as_of=as_of)
    ahead = max(0, position - 1)
    return QueueTicket(
        event_id,
        EntryStatus.WAITING,
        position,
        ahead,
        estimated_wait_seconds(ahead, admit_per_second),
        as_of=as_of,
    )


def ticket_for(
    entry: QueueEntry,
    *,
    tokens: QueueTokens,
    admit_per_second: int,
    now: float | None = None,
) -> QueueTicket:
    """The ticket of an entry; an ADMITTED one carries a fresh queue token (valid for the
    token lifetime, never past the admission window). Raises ``SoldOut`` for a WAITING entry
    of a CLOSED line."""
    now = time.time() if now is None else now
    if entry.status is EntryStatus.WAITING:
        if entry.state is QueueState.CLOSED:
            raise SoldOut("Sold out: the waiting room is closed.")
        return waiting_ticket(entry.event_id, entry.position, admit_per_second, as_of=now)
    if (
        entry.status is EntryStatus.ADMITTED
        and entry.admitted_until is not None
        and entry.admitted_until > now
    ):
        issued = tokens.issue(
            user_id=entry.user_id, event_id=entry.event_id, not_after=entry.admitted_until, now=now
        )
        return QueueTicket(
            entry.event_id,
            EntryStatus.ADMITTED,
            0,
            0,
            0,
            queue_token=issued.token,
            expires_at=issued.expires_at,
            as_of=now,
        )
    expired_at = datetime.fromtimestamp(entry.admitted_until, UTC) if entry.admitted_until else None
    return QueueTicket(
        entry.event_id, EntryStatus.EXPIRED, None, None, None, None, expired_at, as_of=now
    )


async def _limit(rate_limiter: RateLimiter, rule: tuple[str, int, float], key: str) -> int:
    name, limit, window = rule
    decision = await rate_limiter.hit(f"{name}:{key}", limit=limit, window_seconds=window)
    if not decision.allowed:
        raise RateLimited("Too many attempts to join; wait.", retry_after=decision.retry_after)
    return decision.count


async def join_queue(
    *,
    db: Database,
    room: WaitingRoom,
    rate_limiter: RateLimiter,
    codes: CodeStore,
    tokens: QueueTokens,
    user_id: str,
    event_id: str,
    device_id: str | None,
    ip: str | None,
    admit_per_second: int,
    now: float | None = None,
) -> QueueTicket:
    """Join the event's line, or get one's existing entry back (one entry per user per event).

    In order: rate limits per user, device and IP; the blacklist; an existing entry is returned
    as it is; the risk score (``risk``: refused, or to the back of the line); then the entry.
    Raises ``BadUserInput`` (deviceId), ``RateLimited``, ``Forbidden`` (``reason``
    BLACKLISTED or RISK), ``SoldOut`` (the line is closed).
    """
    now = time.time() if now is None else now
    device_id = validation.optional_text(device_id, field="deviceId", max_length=128)
    attempts = await _limit(rate_limiter, USER_LIMIT, user_id)
    if device_id:
        await _limit(rate_limiter, DEVICE_LIMIT, device_id)
    if ip:
        await _limit(rate_limiter, IP_LIMIT, ip)
    if await blacklist.is_blocked(db=db, codes=codes, user_id=user_id, device_id=device_id, ip=ip):
        raise Forbidden("You cannot join this queue.", reason="BLACKLISTED")
    entry = await room.status(event_id, user_id)
    if entry is None:
        assessment = await risk.assess(
            codes=codes, user_id=user_id, device_id=device_id, join_attempts=attempts
        )
        if assessment.verdict is risk.RiskVerdict.REFUSE:
            raise Forbidden("You cannot join this queue.", reason="RISK")
        lane = Lane.BACK if assessment.verdict is risk.RiskVerdict.BACK_OF_LINE else Lane.NORMAL
        try:
            entry, _created = await room.join(event_id, user_id, now=now, lane=lane)
        except QueueClosed as exc:
            raise SoldOut("Sold out: the waiting room is closed.") from exc
    return ticket_for(entry, tokens=tokens, admit_per_second=admit_per_second, now=now)


async def queue_status(
    *,
    room: WaitingRoom,
    tokens: QueueTokens,
    user_id: str,
    event_id: str,
    admit_per_second: int,
    now: float | None = None,
) -> QueueTicket | None:
    """The user's ticket, or None when not in the line. Each call while ADMITTED issues a new
    queue token. Raises ``SoldOut`` for a waiting entry of a closed line."""
    entry = await room.status(event_id, user_id)
    if entry is None:
        return None
    return ticket_for(entry, tokens=tokens, admit_per_second=admit_per_second, now=now)


async def leave_queue(*, room: WaitingRoom, user_id: str, event_id: str) -> bool:
    """Give up a waiting place; False when there was none to give up."""
    return await room.leave(event_id, user_id)


def near_front(position: int, admit_per_second: int) -> bool:
    """Whether ``position`` is within ``NEAR_SECONDS`` of admission at the line's rate."""
    return position <= admit_per_second * NEAR_SECONDS


@dataclass(slots=True)
class _Watch:
    """One ``queuePosition`` subscriber's view of the line, shared by its stream and its
    broker filter (``wants``): a tick wakes only the subscribers it has news for."""

    seq: int | None = None  # the drawn or joined place; None in the pre-queue
    last: int | None = None  # the position last told; None while no place was told
    told_at: float = 0.0  # as of which tick the front last heard its place (0: no tick yet)
    due: float = 0.0  # when a far place may hear next
    closed_at: float | None = None  # the first tick seen saying the line is closed

    def acts_on(self, tick: QueueBroadcast) -> int:
        """Whether ``tick`` makes the stream re-read the entry, push, or end: ``URGENT``
        for an admission (the admitted go first: a buyer waits on it), else True/False."""
        if tick.state is QueueState.CLOSED:
            return self.hears_closed(tick)
        self.closed_at = None  # reopened (seats came back): a far place never heard it closed
        if self.seq is None:
            return tick.state is QueueState.OPEN  # the draw: learn the place
        if self.seq <= tick.watermark:
            return URGENT
        return self.hears(max(1, self.seq - tick.watermark), tick.admit_per_second, tick.at)

    def hears(self, position: int, admit_per_second: int, at: float) -> bool:
        """Whether ``position`` (as of the tick at ``at``) is told: never upwards or twice;
        near the front a place never told yet at once, then about every
        ``NEAR_REFRESH_SECONDS``; further back when due."""
        if self.last is not None and position >= self.last:
            return False
        if near_front(position, admit_per_second):
            return self.last is None or at - self.told_at >= NEAR_REFRESH_SECONDS * 0.9
        # a tick up to half a group's spacing early still counts as due (ticks jitter)
        return at + FAR_REFRESH_SECONDS / FAR_GROUPS / 2 >= self.due

    def hears_closed(self, tick: QueueBroadcast) -> bool:
        """Whether a CLOSED tick ends the stream now. A far place hears it in its group
        (place mod ``FAR_GROUPS``) over ``CLOSE_SPREAD_SECONDS``: at a sell-out, telling the
        whole line in one tick (and taking all its sockets' goodbyes at once) stalled the last
        buyers' holds on the same servers by 50-100 ms (the flash-sale bench)."""
        if self.closed_at is None:
            self.closed_at = tick.at
        if self.seq is None or near_front(self.seq - tick.watermark, tick.admit_per_second):
            return True
        spread = CLOSE_SPREAD_SECONDS * (self.seq % FAR_GROUPS) / FAR_GROUPS
        return tick.at - self.closed_at >= spread

    def wants(self, raw: str) -> int:
        """The broker's filter (it never asks about ``RESYNC``, which always passes)."""
        return self.acts_on(parse_broadcast(raw))


async def watch_position(
    *,
    room: WaitingRoom,
    broker: Broker,
    tokens: QueueTokens,
    user_id: str,
    event_id: str,
    admit_per_second: int,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[QueueTicket]:
    """The ``queuePosition`` stream: the current ticket first, then a ticket whenever the
    position moves (never upwards), ending after the ADMITTED (or EXPIRED) ticket.

    Raises ``NotFound`` when the user is not (or no longer) in the line, ``SoldOut`` when the
    line closes while the user waits.

    Someone within ``NEAR_SECONDS`` of admission hears about every ``NEAR_REFRESH_SECONDS``
    (every tick of the default 1 s ticker; a faster ticker does not make the front's pushes
    more frequent, only admission smoother); someone further back hears at most every
    ``FAR_REFRESH_SECONDS`` (their wait moves by seconds a tick, not by their turn): at an
    on-sale most of the line is far back, and pushing every tick to all of it was most of a
    server's CPU (the flash-sale bench). Admission is always told at once, on the tick that
    admits.

    At the draw everyone waiting learns a place at once. The far end hears its drawn place
    spread over ``FAR_REFRESH_SECONDS`` (``FAR_GROUPS`` groups by place, a tick or so apart)
    rather than all in the draw's tick — and so keeps hearing spread out afterwards. That can
    never delay anyone's admission: a far place is more than ``NEAR_SECONDS`` from its turn.
    """
    watch = _Watch()  # until the entry is read, any OPEN or CLOSED tick wakes the stream
    async with broker.subscribe(
        channels.queue(event_id), latest_only=True, wants=watch.wants
    ) as messages:
        entry = await room.status(event_id, user_id)
        if entry is None:
            raise NotFound("You are not in this event's queue.")
        ticket = ticket_for(entry, tokens=tokens, admit_per_second=admit_per_second, now=clock())
        yield ticket
        if ticket.status is not EntryStatus.WAITING:
            return
        # told_at stays unset: it is compared with the ticker's clock, not this process's
        watch.seq, watch.last = entry.seq, ticket.position
        watch.due = ticket.as_of + FAR_REFRESH_SECONDS
        watermark = entry.watermark
        async for raw in messages:
            reread = raw == RESYNC
            as_of = clock()
            if not reread:
                tick = parse_broadcast(raw)
                as_of = tick.at
                if tick.state is QueueState.CLOSED:
                    raise SoldOut("Sold out: the waiting room is closed.")
                watermark = max(watermark, tick.watermark)
                admit_per_second = tick.admit_per_second
                # re-read once at the draw (to learn the place) and once at admission
                reread = (
                    tick.state is QueueState.OPEN if watch.seq is None else watch.seq <= watermark
                )
            if reread:
                drawn = watch.seq is None
                entry = await room.status(event_id, user_id)
                if entry is None:
                    raise NotFound("You are not in this event's queue.")
                watch.seq, watermark = entry.seq, max(watermark, entry.watermark)
                if entry.status is not EntryStatus.WAITING:
                    final = ticket_for(
                        entry, tokens=tokens, admit_per_second=admit_per_second, now=clock()
                    )
                    yield replace(final, as_of=as_of)  # as of the tick that admitted it
                    return
                if entry.state is QueueState.CLOSED:
                    raise SoldOut("Sold out: the waiting room is closed.")
                if drawn and watch.seq is not None:
                    spread = FAR_REFRESH_SECONDS * (watch.seq % FAR_GROUPS) / FAR_GROUPS
                    watch.due = as_of + spread
            if watch.seq is None:
                continue
            position = max(1, watch.seq - watermark)
            if watch.hears(position, admit_per_second, as_of):
                watch.last, watch.told_at = position, as_of
                watch.due = as_of + FAR_REFRESH_SECONDS
                yield waiting_ticket(event_id, position, admit_per_second, as_of=as_of)
