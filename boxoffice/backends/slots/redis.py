from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from boxoffice.backends.fast_redis import FastRedis

# KEYS[1] sorted set holder -> lease end (ms); ARGV: now ms, lease ms, limit, holder.
# Drops lapsed holders, then adds (or renews) the holder while fewer than ``limit`` hold one.
# Returns 1 when the holder has a slot.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if not redis.call('ZSCORE', KEYS[1], ARGV[4]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS[1] as above; ARGV: lease end ms, lease ms, holders... Renews only present holders.
_RENEW = """
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[i])
end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisSlots:
    """With ``fast``, acquire, renew and release go through the pipelining client: every
    subscription takes a slot when it starts and gives it back when it ends, so a sale that
    ends thousands of queue subscriptions at once (SOLD_OUT) releases thousands of slots in
    one moment, which redis-py's pool turned into a queue that ran out of its 10 s wait."""

    def __init__(
        self, redis: Redis, prefix: str = "bo:slots:", *, fast: FastRedis | None = None
    ) -> None:
        self._redis = redis
        self._fast = fast
        self._prefix = prefix
        self._acquire: Any = (fast or redis).register_script(_ACQUIRE)
        self._renew: Any = (fast or redis).register_script(_RENEW)

    async def acquire(self, key: str, holder: str, *, limit: int, lease_seconds: float) -> bool:
        now = int(time.time() * 1000)
        taken = await self._acquire(
            keys=[self._prefix + key], args=[now, _ms(lease_seconds), limit, holder]
        )
        return bool(int(taken))

    async def renew(self, key: str, holders: list[str], *, lease_seconds: float) -> None:
        if not holders:
            return
        until = int(time.time() * 1000) + _ms(lease_seconds)
        await self._renew(keys=[self._prefix + key], args=[until, _ms(lease_seconds), *holders])

    async def release(self, key: str, holder: str) -> None:
        if self._fast is not None:
            await self._fast.execute_command("ZREM", self._prefix + key, holder)
        else:
            await self._redis.zrem(self._prefix + key, holder)

    async def count(self, key: str) -> int:
        now = int(time.time() * 1000)
        return int(await self._redis.zcount(self._prefix + key, f"({now}", "+inf"))
