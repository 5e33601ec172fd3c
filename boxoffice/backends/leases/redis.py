from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from boxoffice.backends.redis_client import text as _text

# KEYS[1] lease; ARGV[1] owner, ARGV[2] ttl ms. Takes a free lease or renews our own.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] lease; ARGV[1] owner. Deletes the lease only if we hold it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLeases:
    def __init__(self, redis: Redis, prefix: str = "bo:lease:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._acquire: Any = redis.register_script(_ACQUIRE)
        self._release: Any = redis.register_script(_RELEASE)

    async def acquire(self, name: str, owner: str, *, ttl_seconds: float) -> bool:
        ms = max(1, int(ttl_seconds * 1000))
        return bool(await self._acquire(keys=[self._prefix + name], args=[owner, ms]))

    async def release(self, name: str, owner: str) -> None:
        await self._release(keys=[self._prefix + name], args=[owner])

    async def holder(self, name: str) -> str | None:
        value = await self._redis.get(self._prefix + name)
        return _text(value)
