"""Redis waiting room: one Lua script per operation, so each is atomic across processes.

Every key of one event shares the hash tag ``{queue:<event_id>}`` (one Redis Cluster slot),
and every script receives the same seven keys, in this order:

====  ==========================  ==========================================================
KEYS  key                         holds
====  ==========================  ==========================================================
1     ``bo:{queue:E}:meta``       hash: ``state`` (absent = PENDING), ``last_seq``,
                                  ``watermark``, ``expired`` (a count)
2     ``bo:{queue:E}:pre``        sorted set: pre-queue user → lane (0 NORMAL, 1 BACK)
3     ``bo:{queue:E}:waiting``    sorted set: placed waiting user → seq
4     ``bo:{queue:E}:admitted``   sorted set: admitted user → end of window (epoch ms)
5     ``bo:{queue:E}:expired``    set: users whose admission window ended
6     ``bo:{queue:E}:seq``        hash: user → seq (kept after admission)
7     ``bo:{queue:E}:joined``     hash: user → join time (epoch ms); the entry exists iff here
====  ==========================  ==========================================================

An entry's status follows from where it is: in ``admitted`` → ADMITTED, in ``expired`` →
EXPIRED, otherwise (in ``pre`` or ``waiting``) WAITING. Times are integer epoch milliseconds
given by the caller; values come back as strings so Lua never rounds them.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from boxoffice.backends.fast_redis import FastRedis
from boxoffice.backends.waiting_room import (
    Admission,
    EntryStatus,
    Lane,
    QueueClosed,
    QueueEntry,
    QueueSnapshot,
    QueueState,
)

# Shared Lua: the entry of ARGV user read with its line's state and watermark (false when
# absent), and the line's counts.
_VIEW = """
local function view(user)
  local joined = redis.call('HGET', KEYS[7], user)
  if not joined then return false end
  local meta = redis.call('HMGET', KEYS[1], 'state', 'watermark')
  local status, admitted_until = 'WAITING', ''
  local window = redis.call('ZSCORE', KEYS[4], user)
  if window then
    status, admitted_until = 'ADMITTED', window
  elseif redis.call('SISMEMBER', KEYS[5], user) == 1 then
    status = 'EXPIRED'
  end
  local seq = redis.call('HGET', KEYS[6], user) or ''
  return {status, seq, joined, admitted_until, meta[1] or 'PENDING', meta[2] or '0'}
end
"""

_SNAPSHOT = """
local function snapshot()
  local meta = redis.call('HMGET', KEYS[1], 'state', 'watermark', 'last_seq', 'expired')
  return {meta[1] or 'PENDING', meta[2] or '0', meta[3] or '0', redis.call('ZCARD', KEYS[2]),
          redis.call('ZCARD', KEYS[3]), redis.call('ZCARD', KEYS[4]), meta[4] or '0'}
end
"""

_JOIN = (
    _VIEW
    + """
-- ARGV[1] user, ARGV[2] now (ms), ARGV[3] lane (0 NORMAL, 1 BACK).
-- Creates the user's entry unless it exists: PENDING → pre-queue without a seq; OPEN → the
-- next seq (HINCRBY, so concurrent joins never share one). CLOSED creates nothing.
-- Returns {created (0/1), view} or {-1} when closed.
local user = ARGV[1]
if redis.call('HEXISTS', KEYS[7], user) == 1 then return {0, view(user)} end
local state = redis.call('HGET', KEYS[1], 'state') or 'PENDING'
if state == 'CLOSED' then return {-1} end
redis.call('HSET', KEYS[7], user, ARGV[2])
if state == 'PENDING' then
  redis.call('ZADD', KEYS[2], ARGV[3], user)
else
  local seq = redis.call('HINCRBY', KEYS[1], 'last_seq', 1)
  redis.call('ZADD', KEYS[3], seq, user)
  redis.call('HSET', KEYS[6], user, seq)
end
return {1, view(user)}
"""
)

_OPEN = (
    _SNAPSHOT
    + """
-- ARGV[1] seed (hex). PENDING → OPEN: the pre-queue is sorted by (lane, sha1(seed:user),
-- user) — the same order as ``pre_queue_order`` in Python — and given the next seqs, ahead
-- of every later arrival; the pre-queue is then deleted. CLOSED → OPEN resumes admission.
-- Returns the snapshot.
local state = redis.call('HGET', KEYS[1], 'state') or 'PENDING'
if state == 'PENDING' then
  local pre = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
  local draw = {}
  for i = 1, #pre, 2 do
    local user = pre[i]
    draw[#draw + 1] = {tonumber(pre[i + 1]), redis.sha1hex(ARGV[1] .. ':' .. user), user}
  end
  table.sort(draw, function(a, b)
    if a[1] ~= b[1] then return a[1] < b[1] end
    if a[2] ~= b[2] then return a[2] < b[2] end
    return a[3] < b[3]
  end)
  local seq = tonumber(redis.call('HGET', KEYS[1], 'last_seq') or '0')
  for _, item in ipairs(draw) do
    seq = seq + 1
    redis.call('ZADD', KEYS[3], seq, item[3])
    redis.call('HSET', KEYS[6], item[3], seq)
  end
  redis.call('HSET', KEYS[1], 'last_seq', seq)
  redis.call('DEL', KEYS[2])
end
redis.call('HSET', KEYS[1], 'state', 'OPEN')
return snapshot()
"""
)

_CLOSE = (
    _SNAPSHOT
    + """
-- No arguments. Any state → CLOSED: joins refused, nothing admitted. Returns the snapshot.
redis.call('HSET', KEYS[1], 'state', 'CLOSED')
return snapshot()
"""
)

_ADMIT = """
-- ARGV[1] count, ARGV[2] end of the admission window (ms). On an OPEN line, pops the
-- ``count`` lowest seqs from ``waiting`` (ZPOPMIN: each entry leaves waiting exactly once, so
-- no entry is admitted twice however many callers race), files them in ``admitted`` and
-- raises the watermark to the highest seq popped. Returns {watermark, {user, seq, ...}}.
local watermark = tonumber(redis.call('HGET', KEYS[1], 'watermark') or '0')
local admitted = {}
if redis.call('HGET', KEYS[1], 'state') == 'OPEN' and tonumber(ARGV[1]) > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[3], ARGV[1])
  for i = 1, #popped, 2 do
    local seq = tonumber(popped[i + 1])
    redis.call('ZADD', KEYS[4], ARGV[2], popped[i])
    if seq > watermark then watermark = seq end
    admitted[#admitted + 1] = popped[i]
    admitted[#admitted + 1] = popped[i + 1]
  end
  redis.call('HSET', KEYS[1], 'watermark', watermark)
end
return {tostring(watermark), admitted}
"""

_STATUS = (
    _VIEW
    + """
-- ARGV[1] user. Read only. Returns the view, or nil when the user has no entry.
return view(ARGV[1])
"""
)

_LEAVE = """
-- ARGV[1] user. Deletes a WAITING entry (pre-queue or placed) everywhere; an ADMITTED or
-- EXPIRED entry is kept. The watermark is untouched, so nobody's position increases.
-- Returns 1 when removed.
local user = ARGV[1]
if redis.call('HEXISTS', KEYS[7], user) == 0 then return 0 end
if redis.call('ZSCORE', KEYS[4], user) or redis.call('SISMEMBER', KEYS[5], user) == 1 then
  return 0
end
redis.call('ZREM', KEYS[2], user)
redis.call('ZREM', KEYS[3], user)
redis.call('HDEL', KEYS[6], user)
redis.call('HDEL', KEYS[7], user)
return 1
"""

_EXPIRE = """
-- ARGV[1] now (ms). Moves every admitted entry whose window ended by now from ``admitted``
-- to ``expired`` and counts them in meta. Returns how many.
local ended = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
if #ended == 0 then return 0 end
for _, user in ipairs(ended) do redis.call('SADD', KEYS[5], user) end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'expired', #ended)
return #ended
"""

_SNAPSHOT_ONLY = (
    _SNAPSHOT
    + """
-- No arguments. Read only. Returns {state, watermark, last_seq, pre, waiting, admitted, expired}.
return snapshot()
"""
)


def _keys(event_id: str) -> list[str]:
    tag = f"bo:{{queue:{event_id}}}"
    return [
        f"{tag}:{name}"
        for name in ("meta", "pre", "waiting", "admitted", "expired", "seq", "joined")
    ]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(event_id: str, user_id: str, raw: list[Any]) -> QueueEntry:
    status, seq, joined, admitted_until, state, watermark = (_str(v) for v in raw)
    return QueueEntry(
        event_id=event_id,
        user_id=user_id,
        status=EntryStatus(status),
        seq=int(seq) if seq else None,
        joined_at=int(joined) / 1000,
        admitted_until=float(admitted_until) / 1000 if admitted_until else None,
        state=QueueState(state),
        watermark=int(watermark),
    )


def _snapshot(raw: list[Any]) -> QueueSnapshot:
    state, watermark, last_seq, pre, waiting, admitted, expired = (_str(v) for v in raw)
    return QueueSnapshot(
        state=QueueState(state),
        watermark=int(watermark),
        last_seq=int(last_seq),
        pre_queue=int(pre),
        waiting=int(waiting),
        admitted=int(admitted),
        expired=int(expired),
    )


class RedisWaitingRoom:
    """With ``fast``, the per-user scripts (join, status, leave) go through the pipelining
    client: when a line opens, every subscriber of the event re-reads its entry at once
    (``watch_position``), thousands of calls in one moment that redis-py's pool (64
    connections, a checkout per command) turned into a queue — its 10 s wait for a free
    connection ran out and subscriptions and holds failed. The ticker's scripts, once a tick,
    stay on redis-py."""

    def __init__(self, redis: Redis, *, fast: FastRedis | None = None) -> None:
        self._redis = redis
        per_user = fast or redis
        self._join: Any = per_user.register_script(_JOIN)
        self._open: Any = redis.register_script(_OPEN)
        self._close: Any = redis.register_script(_CLOSE)
        self._admit: Any = redis.register_script(_ADMIT)
        self._status: Any = per_user.register_script(_STATUS)
        self._leave: Any = per_user.register_script(_LEAVE)
        self._expire: Any = redis.register_script(_EXPIRE)
        self._snapshot: Any = redis.register_script(_SNAPSHOT_ONLY)

    async def join(
        self, event_id: str, user_id: str, *, now: float, lane: Lane = Lane.NORMAL
    ) -> tuple[QueueEntry, bool]:
        reply = await self._join(
            keys=_keys(event_id), args=[user_id, _ms(now), 1 if lane is Lane.BACK else 0]
        )
        if int(reply[0]) < 0:
            raise QueueClosed(event_id)
        return _entry(event_id, user_id, reply[1]), int(reply[0]) == 1

    async def open(self, event_id: str, seed: bytes) -> QueueSnapshot:
        return _snapshot(await self._open(keys=_keys(event_id), args=[seed.hex()]))

    async def close(self, event_id: str) -> QueueSnapshot:
        return _snapshot(await self._close(keys=_keys(event_id), args=[]))

    async def admit(
        self, event_id: str, count: int, *, now: float, window_seconds: float
    ) -> Admission:
        watermark, flat = await self._admit(
            keys=_keys(event_id), args=[max(0, count), _ms(now + window_seconds)]
        )
        pairs = tuple(
            (_str(flat[i]), int(float(_str(flat[i + 1])))) for i in range(0, len(flat), 2)
        )
        return Admission(pairs, int(_str(watermark)))

    async def status(self, event_id: str, user_id: str) -> QueueEntry | None:
        raw = await self._status(keys=_keys(event_id), args=[user_id])
        return None if raw is None else _entry(event_id, user_id, raw)

    async def leave(self, event_id: str, user_id: str) -> bool:
        return bool(await self._leave(keys=_keys(event_id), args=[user_id]))

    async def expire(self, event_id: str, *, now: float) -> int:
        return int(await self._expire(keys=_keys(event_id), args=[_ms(now)]))

    async def snapshot(self, event_id: str) -> QueueSnapshot:
        return _snapshot(await self._snapshot(keys=_keys(event_id), args=[]))

    async def drop(self, event_id: str) -> None:
        await self._redis.delete(*_keys(event_id))
