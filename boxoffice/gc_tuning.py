"""Garbage-collector settings for a server process that holds thousands of connections.

CPython's cyclic collector scans every tracked object of the generations it collects, and a
full (oldest-generation) collection scans them all. A process holding 10,000 WebSocket
subscribers tracks ~3 million objects (~280 per subscriber: its socket, protocol, handler,
tasks, generators), nearly all of them as long-lived as the connection, so with the default
thresholds (700, 10, 10) the collector ran a full collection every few seconds of a busy
sale and each took 1–4.6 s with the event loop stopped (``bench/flash_sale.py`` with 10,000
users on one process: 47 full collections, 64 s of collector time in a 4-minute run; holds
answered after tens of seconds, queue updates seconds late).

``tune_gc`` (``boxoffice serve`` calls it once the app is built):

- ``gc.freeze()`` moves what start-up built (modules, the schema, ~330,000 objects) to the
  permanent generation, which no collection scans again;
- the first threshold goes from 700 to 20,000 allocations, so short-lived request objects
  die before a collection instead of being promoted because they were in flight when one
  ran; full collections then come about every 4 million net allocations (and, as before,
  only once the long-lived objects grew by a quarter).

Why not higher: a young collection stops the loop for as long as it takes to scan the young
objects, and at an on-sale those are mostly the subscribers' waiting coroutines and futures,
made anew at every wake. With 50,000 (this module's first value) a collection during the
flash sale held ~130,000 young objects and stopped a server for 80-300 ms, and the pre-queue's
middle-generation collections took 560-660 ms. With 20,000 (the same flash sale, 10,000 users
on 2 processes, two traced runs each): the same total collector time, no full collection,
pauses at most 58-87 ms during the sale and 280-356 ms while 10,000 sockets were opening;
hold p99 over four runs each 114-172 ms against 138-220 ms.

Waves (``after_wave``, called by the broker's fan-out): a message that wakes thousands of
subscribers of a process fills the young generation without moving the count that triggers a
collection, so the process collects its young generation once such a wave has settled rather
than at a random moment of the requests after it. With the draw a second before the sale, that
moved the flash sale's 60-80 ms young collections 0.2-0.8 s into the sale to 30-40 ms ones
before it opens.

Garbage without cycles is freed at once by reference counting as always; only cyclic garbage
waits longer for a collection. Measured with the same flash sale (5,000 users, one process):
no full collection instead of 24 (12.5 s), createHold p50 0.3 s instead of 4.7 s, queue
update p99 0.71 s instead of 1.38 s.
"""

from __future__ import annotations

import asyncio
import gc

THRESHOLDS = (20_000, 20, 10)


def tune_gc(thresholds: tuple[int, int, int] = THRESHOLDS) -> None:
    """Freeze what exists now and raise the collection thresholds (see the module)."""
    global _tuned
    gc.collect()  # what start-up left as garbage goes now, not into the permanent generation
    gc.freeze()
    gc.set_threshold(*thresholds)
    _tuned = True


# A message that woke this many subscribers of one process is a wave (the draw, a sell-out).
WAVE = 1000
# how long after a wave its young collection runs: the woken have re-read and pushed by then
WAVE_SETTLE_SECONDS = 0.3
# at most one such collection this often: under a steady stream of waves (a seat map with
# thousands watching, a hold every few milliseconds) the young state mostly dies at the next
# wake without ever being scanned, and collecting after each wave would scan it every time
WAVE_MIN_INTERVAL_SECONDS = 5.0

_tuned = False
_pending: asyncio.TimerHandle | None = None
_last_wave_collection = -WAVE_MIN_INTERVAL_SECONDS


def after_wave(woken: int) -> None:
    """``woken`` subscribers were just woken by one message. Each wake re-creates a
    subscriber's waiting state (its stream's coroutines, futures, the entry it re-read), so a
    wave of thousands leaves the young generation tens of thousands of objects deep while
    the net allocation count, which decides when the collector runs, hardly moves (the old
    state is freed as the new one is made). The collection that finally scans them lands at
    a random later moment, often in the middle of the next burst of requests (the flash
    sale: 60-80 ms, 0.4-0.8 s into the sale, after the draw a second before it). Collecting
    the young generation once the wave has settled pays that pause now, in the wave's own
    time. Only in a tuned (serving) process, and at most once per
    ``WAVE_MIN_INTERVAL_SECONDS``."""
    global _pending
    if not _tuned or woken < WAVE or _pending is not None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if loop.time() - _last_wave_collection < WAVE_MIN_INTERVAL_SECONDS:
        return
    _pending = loop.call_later(WAVE_SETTLE_SECONDS, _collect_young, loop)


def _collect_young(loop: asyncio.AbstractEventLoop) -> None:
    global _pending, _last_wave_collection
    _pending = None
    _last_wave_collection = loop.time()
    gc.collect(0)
