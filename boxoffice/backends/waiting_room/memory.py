"""In-process waiting room (one process). Every method runs without awaiting, so each one is
atomic on the event loop, like the Redis adapter's scripts."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from dataclasses import dataclass, field

from boxoffice.backends.waiting_room import (
    Admission,
    EntryStatus,
    Lane,
    QueueClosed,
    QueueEntry,
    QueueSnapshot,
    QueueState,
    pre_queue_order,
)


@dataclass(slots=True)
class _Entry:
    status: EntryStatus
    seq: int | None
    joined_at: float
    lane: Lane
    admitted_until: float | None = None


@dataclass
class _Line:
    state: QueueState = QueueState.PENDING
    last_seq: int = 0
    watermark: int = 0
    expired: int = 0
    entries: dict[str, _Entry] = field(default_factory=dict)
    pre_queue: dict[str, Lane] = field(default_factory=dict)
    waiting: OrderedDict[str, int] = field(default_factory=OrderedDict)  # in seq order
    admitted: dict[str, float] = field(default_factory=dict)  # user -> admitted until
    windows: list[tuple[float, str]] = field(default_factory=list)  # heap of (until, user)


class MemoryWaitingRoom:
    def __init__(self) -> None:
        self._lines: dict[str, _Line] = {}

    def _line(self, event_id: str) -> _Line:
        line = self._lines.get(event_id)
        if line is None:
            line = self._lines[event_id] = _Line()
        return line

    @staticmethod
    def _view(event_id: str, user_id: str, line: _Line, entry: _Entry) -> QueueEntry:
        return QueueEntry(
            event_id=event_id,
            user_id=user_id,
            status=entry.status,
            seq=entry.seq,
            joined_at=entry.joined_at,
            admitted_until=entry.admitted_until,
            state=line.state,
            watermark=line.watermark,
        )

    @staticmethod
    def _snapshot(line: _Line) -> QueueSnapshot:
        return QueueSnapshot(
            state=line.state,
            watermark=line.watermark,
            last_seq=line.last_seq,
            pre_queue=len(line.pre_queue),
            waiting=len(line.waiting),
            admitted=len(line.admitted),
            expired=line.expired,
        )

    async def join(
        self, event_id: str, user_id: str, *, now: float, lane: Lane = Lane.NORMAL
    ) -> tuple[QueueEntry, bool]:
        line = self._line(event_id)
        entry = line.entries.get(user_id)
        if entry is not None:
            return self._view(event_id, user_id, line, entry), False
        if line.state is QueueState.CLOSED:
            raise QueueClosed(event_id)
        if line.state is QueueState.PENDING:
            entry = _Entry(EntryStatus.WAITING, None, now, lane)
            line.pre_queue[user_id] = lane
        else:
            line.last_seq += 1
            entry = _Entry(EntryStatus.WAITING, line.last_seq, now, lane)
            line.waiting[user_id] = line.last_seq
        line.entries[user_id] = entry
        return self._view(event_id, user_id, line, entry), True

    async def open(self, event_id: str, seed: bytes) -> QueueSnapshot:
        line = self._line(event_id)
        if line.state is QueueState.PENDING:
            for user_id in pre_queue_order(seed, line.pre_queue.items()):
                line.last_seq += 1
                line.entries[user_id].seq = line.last_seq
                line.waiting[user_id] = line.last_seq
            line.pre_queue.clear()
        line.state = QueueState.OPEN
        return self._snapshot(line)

    async def close(self, event_id: str) -> QueueSnapshot:
        line = self._line(event_id)
        line.state = QueueState.CLOSED
        return self._snapshot(line)

    async def admit(
        self, event_id: str, count: int, *, now: float, window_seconds: float
    ) -> Admission:
        line = self._line(event_id)
        admitted: list[tuple[str, int]] = []
        if line.state is QueueState.OPEN:
            until = now + window_seconds
            while line.waiting and len(admitted) < count:
                user_id, seq = line.waiting.popitem(last=False)
                entry = line.entries[user_id]
                entry.status = EntryStatus.ADMITTED
                entry.admitted_until = until
                line.admitted[user_id] = until
                heapq.heappush(line.windows, (until, user_id))
                line.watermark = max(line.watermark, seq)
                admitted.append((user_id, seq))
        return Admission(tuple(admitted), line.watermark)

    async def status(self, event_id: str, user_id: str) -> QueueEntry | None:
        line = self._lines.get(event_id)
        entry = line.entries.get(user_id) if line is not None else None
        if line is None or entry is None:
            return None
        return self._view(event_id, user_id, line, entry)

    async def leave(self, event_id: str, user_id: str) -> bool:
        line = self._lines.get(event_id)
        entry = line.entries.get(user_id) if line is not None else None
        if line is None or entry is None or entry.status is not EntryStatus.WAITING:
            return False
        del line.entries[user_id]
        line.pre_queue.pop(user_id, None)
        line.waiting.pop(user_id, None)
        return True

    async def expire(self, event_id: str, *, now: float) -> int:
        line = self._lines.get(event_id)
        if line is None:
            return 0
        ended = 0
        while line.windows and line.windows[0][0] <= now:
            _until, user_id = heapq.heappop(line.windows)
            if line.admitted.pop(user_id, None) is not None:
                line.entries[user_id].status = EntryStatus.EXPIRED
                ended += 1
        line.expired += ended
        return ended

    async def snapshot(self, event_id: str) -> QueueSnapshot:
        line = self._lines.get(event_id)
        return self._snapshot(line if line is not None else _Line())

    async def drop(self, event_id: str) -> None:
        self._lines.pop(event_id, None)
