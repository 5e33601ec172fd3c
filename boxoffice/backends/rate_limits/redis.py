from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from boxoffice.backends.fast_redis import FastRedis
from boxoffice.backends.rate_limits import RateDecision

# The counter's Lua body, shared with the scripts that count along with other work
# (``services.revocation``). KEYS[n] counter, ARGV[m] window in ms (``hit_lua(n, m)``).
# Increments and starts the window on the first hit; yields count and ms until the window ends.
HIT_LUA = """
local count = redis.call('INCR', KEYS[{k}])
if count == 1 then redis.call('PEXPIRE', KEYS[{k}], ARGV[{w}]) end
local ttl = redis.call('PTTL', KEYS[{k}])
if ttl < 0 then redis.call('PEXPIRE', KEYS[{k}], ARGV[{w}]); ttl = tonumber(ARGV[{w}]) end
"""


def hit_lua(key: int, window: int) -> str:
    return HIT_LUA.format(k=key, w=window)


_HIT = hit_lua(1, 1) + "return {count, ttl}\n"


def window_ms(window_seconds: float) -> int:
    return max(1, int(window_seconds * 1000))


class RedisRateLimiter:
    def __init__(
        self, redis: Redis, prefix: str = "bo:rl:", *, fast: FastRedis | None = None
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._fast = fast
        self._hit: Any = (fast or redis).register_script(_HIT)

    @property
    def fast(self) -> FastRedis | None:
        """The hot-path client (``services.revocation`` counts in its markers' round trip)."""
        return self._fast

    def full_key(self, key: str) -> str:
        return self._prefix + key

    @staticmethod
    def decision(count: int, ttl_ms: int, limit: int) -> RateDecision:
        """What ``hit`` answers for the counter's reply ``{count, ttl_ms}``."""
        allowed = count <= limit
        return RateDecision(allowed, count, 0.0 if allowed else ttl_ms / 1000)

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> RateDecision:
        count, ttl_ms = await self._hit(keys=[self._prefix + key], args=[window_ms(window_seconds)])
        return self.decision(int(count), int(ttl_ms), limit)

    async def reset(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)
