"""Waiting room port: one fair line per event, admitted a few at a time.

The line of an event::

    PENDING ──open(seed)──► OPEN ──close()──► CLOSED
       │                     ▲                  │
       │ joins: pre-queue    └─────open()───────┘ (resumes; nothing is redrawn)
       ▼
    entries without a place until ``open`` draws their order

- ``join`` gives a user ONE entry per event; joining again returns the same entry, whatever
  its status. Before ``open`` entries wait in the pre-queue without a place; ``open`` orders
  the pre-queue at random (``pre_queue_order``) and gives it the first sequence numbers, so
  everyone who came before the sale is ahead of everyone who comes after it. After ``open``
  arrivals are first come, first served. ``CLOSED`` refuses new entries (the caller answers
  SOLD_OUT) and admits nobody.
- Every placed entry has a sequence number ``seq`` (1, 2, 3, ...), its place in line.
  ``admit(n)`` admits the next ``n`` waiting entries in ``seq`` order, each exactly once, and
  raises the event's ``watermark`` to the highest ``seq`` admitted. A waiting entry's position
  is ``seq - watermark`` (``ahead`` is one less), so one broadcast of the watermark lets every
  waiting client compute its own position; entries that leave leave gaps, so a position is an
  upper bound that only ever decreases.
- Admitted entries stay ADMITTED for the admission window given to ``admit``; ``expire`` then
  marks them EXPIRED (they keep their entry: joining again does not start over).

Adapters: ``memory.MemoryWaitingRoom`` (one process) and ``redis.RedisWaitingRoom`` (Lua
scripts; every key of one event under the hash tag ``{queue:<event_id>}``). Times are epoch
seconds passed in by the caller (``now``), so both adapters agree and tests control the clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class QueueState(StrEnum):
    PENDING = "PENDING"  # the sale has not opened: arrivals go to the pre-queue
    OPEN = "OPEN"
    CLOSED = "CLOSED"  # sold out: no new entries, no admissions


class EntryStatus(StrEnum):
    WAITING = "WAITING"
    ADMITTED = "ADMITTED"
    EXPIRED = "EXPIRED"


class Lane(StrEnum):
    """Where a pre-queue arrival is drawn: every NORMAL entry is drawn ahead of every BACK
    entry (high risk scores go to the back of the line)."""

    NORMAL = "NORMAL"
    BACK = "BACK"


@dataclass(frozen=True, slots=True)
class QueueEntry:
    """One user's entry, read together with its line's state and watermark."""

    event_id: str
    user_id: str
    status: EntryStatus
    seq: int | None  # None while in the pre-queue
    joined_at: float
    admitted_until: float | None  # end of the admission window once admitted
    state: QueueState
    watermark: int

    @property
    def position(self) -> int | None:
        """1 for the next to be admitted; None unless waiting with a place."""
        if self.status is not EntryStatus.WAITING or self.seq is None:
            return None
        return max(1, self.seq - self.watermark)


@dataclass(frozen=True, slots=True)
class Admission:
    """The result of one ``admit`` call: who got in (in line order) and the new watermark."""

    admitted: tuple[tuple[str, int], ...]  # (user_id, seq)
    watermark: int


@dataclass(frozen=True, slots=True)
class QueueSnapshot:
    state: QueueState
    watermark: int
    last_seq: int  # the highest sequence number given out
    pre_queue: int  # entries waiting for the draw
    waiting: int  # entries with a place, not yet admitted
    admitted: int  # admitted and inside their window
    expired: int


class WaitingRoom(Protocol):
    async def join(
        self, event_id: str, user_id: str, *, now: float, lane: Lane = Lane.NORMAL
    ) -> tuple[QueueEntry, bool]:
        """The user's entry and whether this call created it (an existing entry is returned
        as it is, whatever its status). Raises ``QueueClosed`` when the line is CLOSED and the
        user has no entry. ``lane`` matters only in the pre-queue (after opening every
        arrival is at the back anyway)."""
        ...

    async def open(self, event_id: str, seed: bytes) -> QueueSnapshot:
        """PENDING → OPEN: draw the pre-queue's order from ``seed`` (secret, random, at least
        16 bytes) and place it ahead of later arrivals. CLOSED → OPEN resumes; OPEN is left
        as it is."""
        ...

    async def close(self, event_id: str) -> QueueSnapshot:
        """Stop admitting and refuse new entries (sold out). Existing entries are kept."""
        ...

    async def admit(
        self, event_id: str, count: int, *, now: float, window_seconds: float
    ) -> Admission:
        """Admit the next ``count`` waiting entries of an OPEN line, atomically and each
        exactly once, admitted until ``now + window_seconds``. Nothing happens otherwise."""
        ...

    async def status(self, event_id: str, user_id: str) -> QueueEntry | None: ...

    async def leave(self, event_id: str, user_id: str) -> bool:
        """Remove a WAITING entry (its place becomes a gap; the user may join again, at the
        back). ADMITTED and EXPIRED entries stay: leaving cannot buy a second admission."""
        ...

    async def expire(self, event_id: str, *, now: float) -> int:
        """Mark ADMITTED entries whose window ended by ``now`` as EXPIRED; how many."""
        ...

    async def snapshot(self, event_id: str) -> QueueSnapshot: ...

    async def drop(self, event_id: str) -> None:
        """Forget the event's line entirely (after the event)."""
        ...


class QueueClosed(Exception):
    """``join`` on a CLOSED line: the caller answers SOLD_OUT."""


def draw_key(seed: bytes, user_id: str) -> str:
    """The user's draw ticket: SHA-1 of the seed (hex) and the user id. With a seed from a
    secure source that nobody knows before the draw, the keys are independent and uniform, so
    sorting by them is a uniformly random order that no choice of user id can bias. (SHA-1
    because it is what Redis Lua offers: ``redis.sha1hex``.)"""
    return hashlib.sha1(f"{seed.hex()}:{user_id}".encode(), usedforsecurity=False).hexdigest()


def pre_queue_order(seed: bytes, entries: Iterable[tuple[str, Lane]]) -> list[str]:
    """The pre-queue's drawn order: NORMAL before BACK, each lane sorted by ``draw_key``.
    Both adapters draw exactly this order from the same seed."""
    return [
        user_id
        for _lane, _key, user_id in sorted(
            (lane is Lane.BACK, draw_key(seed, user_id), user_id) for user_id, lane in entries
        )
    ]


__all__ = [
    "Admission",
    "EntryStatus",
    "Lane",
    "QueueClosed",
    "QueueEntry",
    "QueueSnapshot",
    "QueueState",
    "WaitingRoom",
    "draw_key",
    "pre_queue_order",
]
