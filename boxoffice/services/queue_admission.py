"""The admission ticker: lets each event's line in at its rate, in one process at a time.

Every ``tick_seconds`` the process holding the ``queue-admission`` lease, for every event the
schedule source lists:

1. closes the line if the event is sold out, else opens it from ``draw_ahead_seconds`` (a
   second, or a tick if longer) before the sale starts (the first opening draws the pre-queue
   with a fresh ``os.urandom`` seed), else leaves it PENDING;
2. on an OPEN line whose sale has started, admits ``admit_per_second × tick_seconds`` entries
   (fractions carry over to the next tick), each admitted for ``admission_window_seconds``;
3. expires admitted entries whose window ended;
4. publishes ONE ``QueueBroadcast`` (the watermark) on ``channels.queue(event_id)``.

It issues no tokens: an admitted user gets one when asking for its status. The schedule source
is where the catalog plugs in (which events sell through the waiting room, when their sale
opens, their rate, whether every tier of every session is sold out).

Why the draw comes early: drawing is the one moment every subscriber of the line must
hear from the server at once (each re-reads its drawn place; ``watch_position``). Done in the
same tick as the first admissions, that burst — thousands of reads and pushes — sat in front
of the first buyers' holds (the flash-sale bench: hold p99 over a second). A second early, it
is over before anyone may buy; the price is that arrivals in that last second before the sale
are placed after the drawn line rather than drawn with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from boxoffice.backends.broker import Broker, channels
from boxoffice.backends.leases import Leases
from boxoffice.backends.waiting_room import QueueState, WaitingRoom
from boxoffice.clock import next_start
from boxoffice.services.waiting_room import QueueBroadcast

log = logging.getLogger("boxoffice.queue")

LEASE = "queue-admission"
# the line is drawn at least this long (or a tick, if longer) before the sale starts
DRAW_AHEAD_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class QueueSchedule:
    event_id: str
    opens_at: datetime  # the sale's start: arrivals before it are drawn at random
    admit_per_second: int
    sold_out: bool = False


ScheduleSource = Callable[[], Awaitable[Sequence[QueueSchedule]]]


@dataclass(frozen=True, slots=True)
class TickReport:
    event_id: str
    state: QueueState
    admitted: tuple[tuple[str, int], ...]  # (user_id, seq) in line order
    watermark: int
    expired: int
    at: float = 0.0  # the tick's time: the admitted are admitted until at + the window
    waiting: int = 0  # entries left waiting (pre-queue included), as of the tick's snapshot


class AdmissionTicker:
    def __init__(
        self,
        *,
        room: WaitingRoom,
        broker: Broker,
        leases: Leases,
        schedules: ScheduleSource,
        owner: str,
        tick_seconds: float = 1.0,
        admission_window_seconds: float = 600.0,
        draw_ahead_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.room = room
        self.broker = broker
        self.leases = leases
        self.schedules = schedules
        self.owner = owner
        self.tick_seconds = tick_seconds
        self.admission_window_seconds = admission_window_seconds
        self.draw_ahead_seconds = (
            max(tick_seconds, DRAW_AHEAD_SECONDS)
            if draw_ahead_seconds is None
            else draw_ahead_seconds
        )
        self.clock = clock
        self._credit: dict[str, float] = {}

    @property
    def lease_ttl_seconds(self) -> float:
        """How long a dead holder blocks the others."""
        return max(3 * self.tick_seconds, 5.0)

    async def tick(self) -> list[TickReport]:
        """One step for every scheduled event (the caller holds the lease)."""
        reports = []
        for schedule in await self.schedules():
            reports.append(await self._tick_event(schedule))
        return reports

    async def _tick_event(self, schedule: QueueSchedule) -> TickReport:
        event_id, now = schedule.event_id, self.clock()
        opens_at = schedule.opens_at.timestamp()
        if schedule.sold_out:
            snapshot = await self.room.close(event_id)
        elif now >= opens_at - self.draw_ahead_seconds:
            snapshot = await self.room.open(event_id, os.urandom(32))
        else:
            snapshot = await self.room.snapshot(event_id)
        admitted: tuple[tuple[str, int], ...] = ()
        watermark = snapshot.watermark
        if snapshot.state is QueueState.OPEN and now >= opens_at:
            credit = self._credit.get(event_id, 0.0) + schedule.admit_per_second * self.tick_seconds
            count = math.floor(credit + 1e-9)
            self._credit[event_id] = credit - count
            admission = await self.room.admit(
                event_id, count, now=now, window_seconds=self.admission_window_seconds
            )
            admitted, watermark = admission.admitted, admission.watermark
        else:
            self._credit.pop(event_id, None)
        expired = await self.room.expire(event_id, now=now)
        message = QueueBroadcast(
            event_id, snapshot.state, watermark, schedule.admit_per_second, now
        )
        await self.broker.publish(channels.queue(event_id), message.to_json())
        waiting = max(0, snapshot.pre_queue + snapshot.waiting - len(admitted))
        return TickReport(event_id, snapshot.state, admitted, watermark, expired, now, waiting)

    async def run_once(self) -> list[TickReport] | None:
        """Take (or renew) the lease and tick; None when another process holds it."""
        if not await self.leases.acquire(LEASE, self.owner, ttl_seconds=self.lease_ttl_seconds):
            self._credit.clear()
            return None
        return await self.tick()

    async def run(self) -> None:
        """Tick forever (cancel to stop); the lease is given up on the way out."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                started = loop.time()
                try:
                    await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("queue admission tick failed")
                # ticks start tick_seconds apart: the credit per tick assumes it
                await asyncio.sleep(next_start(started, self.tick_seconds, loop.time()))
        finally:
            with contextlib.suppress(Exception):
                await self.leases.release(LEASE, self.owner)
