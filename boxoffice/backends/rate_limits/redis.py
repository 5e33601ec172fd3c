from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from boxoffice.backends.fast_redis import FastRedis
from boxoffice.backends.rate_limits import RateDecision

# KEYS[1] counter; ARGV[1] window in ms. Increments and starts the window on the first hit;
# returns {count, ms until the window ends}.
_HIT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, prefix: str = "bo:rl:", *, fast: FastRedis | None = None
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._hit: Any = (fast or redis).register_script(_HIT)

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> RateDecision:
        count, ttl_ms = await self._hit(
            keys=[self._prefix + key], args=[max(1, int(window_seconds * 1000))]
        )
        allowed = int(count) <= limit
        return RateDecision(allowed, int(count), 0.0 if allowed else int(ttl_ms) / 1000)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
