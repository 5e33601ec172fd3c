"""Ports for hot, short-lived state, each with a Redis adapter (many processes) and a memory
adapter (embedded, one process), chosen by ``BOXOFFICE_REDIS_URL``."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from boxoffice.backends.broker import Broker
from boxoffice.backends.codes import CodeStore
from boxoffice.backends.fast_redis import FastRedis
from boxoffice.backends.leases import Leases
from boxoffice.backends.rate_limits import RateLimiter
from boxoffice.backends.redis_client import connect
from boxoffice.backends.seat_ledger import SeatLedger
from boxoffice.backends.slots import Slots
from boxoffice.backends.waiting_room import WaitingRoom


@dataclass
class Backends:
    broker: Broker
    rate_limiter: RateLimiter
    codes: CodeStore
    leases: Leases
    ledger: SeatLedger
    waiting_room: WaitingRoom
    slots: Slots
    redis: Redis | None = None
    fast: FastRedis | None = None  # the hot-path client (scripts, MGET) on the same Redis

    @property
    def kind(self) -> str:
        return "redis" if self.redis is not None else "memory"

    async def ping(self) -> None:
        """Raise unless the broker answers."""
        if self.redis is not None:
            await self.redis.ping()
        if not self.broker.healthy:
            raise ConnectionError("broker listener is not running")

    async def close(self) -> None:
        await self.broker.disconnect()
        if self.fast is not None:
            await self.fast.aclose()
        if self.redis is not None:
            await self.redis.aclose()


async def open_backends(redis_url: str | None) -> Backends:
    if redis_url:
        from boxoffice.backends.codes.redis import RedisCodeStore
        from boxoffice.backends.leases.redis import RedisLeases
        from boxoffice.backends.rate_limits.redis import RedisRateLimiter
        from boxoffice.backends.seat_ledger.redis import RedisSeatLedger
        from boxoffice.backends.slots.redis import RedisSlots
        from boxoffice.backends.waiting_room.redis import RedisWaitingRoom

        redis = connect(redis_url)
        fast = FastRedis(redis_url)
        broker = Broker(redis_url)
        await broker.connect()
        return Backends(
            broker=broker,
            rate_limiter=RedisRateLimiter(redis, fast=fast),
            codes=RedisCodeStore(redis, fast=fast),
            leases=RedisLeases(redis),
            ledger=RedisSeatLedger(redis, fast=fast),
            waiting_room=RedisWaitingRoom(redis, fast=fast),
            slots=RedisSlots(redis, fast=fast),
            redis=redis,
            fast=fast,
        )
    from boxoffice.backends.codes.memory import MemoryCodeStore
    from boxoffice.backends.leases.memory import MemoryLeases
    from boxoffice.backends.rate_limits.memory import MemoryRateLimiter
    from boxoffice.backends.seat_ledger.memory import MemorySeatLedger
    from boxoffice.backends.slots.memory import MemorySlots
    from boxoffice.backends.waiting_room.memory import MemoryWaitingRoom

    broker = Broker("memory://")
    await broker.connect()
    return Backends(
        broker=broker,
        rate_limiter=MemoryRateLimiter(),
        codes=MemoryCodeStore(),
        leases=MemoryLeases(),
        ledger=MemorySeatLedger(broker),
        waiting_room=MemoryWaitingRoom(),
        slots=MemorySlots(),
    )
