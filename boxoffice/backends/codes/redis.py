from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from redis.asyncio import Redis

from boxoffice.backends.fast_redis import FastRedis
from boxoffice.backends.redis_client import text as _text

# KEYS[1] counter; ARGV[1] ttl ms. INCR that starts the expiry on the first increment.
_INCR = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return value
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


async def _stored(reply: Awaitable[Any]) -> bool:
    return (await reply) is not None


class RedisCodeStore:
    def __init__(
        self, redis: Redis, prefix: str = "bo:kv:", *, fast: FastRedis | None = None
    ) -> None:
        self._redis = redis
        self._fast = fast  # get_many checks revocation markers on every signed-in request
        self._prefix = prefix
        self._incr: Any = redis.register_script(_INCR)

    @property
    def fast(self) -> FastRedis | None:
        """The hot-path client, for scripts that read markers and more in one round trip."""
        return self._fast

    def full_key(self, key: str) -> str:
        return self._prefix + key

    async def put(self, key: str, value: str, *, ttl_seconds: float) -> None:
        await self._redis.set(self._prefix + key, value, px=_ms(ttl_seconds))

    def _set_nx(self, key: str, value: str, ttl_seconds: float) -> tuple[str | int, ...]:
        return ("SET", self._prefix + key, value, "PX", _ms(ttl_seconds), "NX")

    async def put_if_absent(self, key: str, value: str, *, ttl_seconds: float) -> bool:
        # on the hold path (a queue token spent with the hold): the fast client when there is one
        if self._fast is not None:
            reply = await self._fast.execute_command(*self._set_nx(key, value, ttl_seconds))
            return reply is not None
        return bool(await self._redis.set(self._prefix + key, value, px=_ms(ttl_seconds), nx=True))

    def put_if_absent_soon(self, key: str, value: str, *, ttl_seconds: float) -> Awaitable[bool]:
        if self._fast is not None:
            sent = self._fast.submit(*self._set_nx(key, value, ttl_seconds))
            if sent is not None:
                return _stored(sent)
        # no connection up yet (or traced): sent from a task of its own, in the order asked
        return asyncio.ensure_future(self.put_if_absent(key, value, ttl_seconds=ttl_seconds))

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._prefix + key)
        return _text(value)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        if not keys:
            return []
        wanted = [self._prefix + key for key in keys]
        values = await (self._fast.mget(wanted) if self._fast else self._redis.mget(wanted))
        return [_text(v) for v in values]

    async def take(self, key: str) -> str | None:
        value = await self._redis.getdel(self._prefix + key)
        return _text(value)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        return int(await self._incr(keys=[self._prefix + key], args=[_ms(ttl_seconds)]))
