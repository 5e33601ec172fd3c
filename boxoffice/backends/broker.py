"""Pub/sub between processes, on broadcaster's backend interface: Redis pub/sub (many
processes) or broadcaster's in-process ``memory://`` backend (one process).

The fan-out here replaces broadcaster's ``Broadcast`` class, which races when two subscribers
of one channel arrive together (the second overwrites the first's queue, which then never
receives) and keeps unbounded queues. Here subscribe/unsubscribe are serialised, each
subscriber's queue is bounded, and a subscriber that falls behind — or whose Redis connection
was restored — receives ``RESYNC``: it may have missed messages and should re-read the state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend

from boxoffice.backends.redis_pubsub import RESYNC, RedisPubSubBackend

__all__ = ["RESYNC", "Broker", "channels"]

QUEUE_SIZE = 1000


class Broker:
    def __init__(self, url: str, *, queue_size: int = QUEUE_SIZE) -> None:
        self.url = url
        self._redis: RedisPubSubBackend | None = None
        self._backend: BroadcastBackend
        if url.startswith(("redis://", "rediss://")):
            self._redis = RedisPubSubBackend(url)
            self._backend = self._redis
        else:
            self._backend = MemoryBackend(url)
        self._queue_size = queue_size
        self._subscribers: dict[str, set[asyncio.Queue[str]]] = {}
        self._lock = asyncio.Lock()
        self._fanout: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        await self._backend.connect()
        self._fanout = asyncio.create_task(self._run_fanout(), name="broker-fanout")

    async def disconnect(self) -> None:
        if self._fanout is not None:
            self._fanout.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._fanout
            self._fanout = None
            with contextlib.suppress(Exception):
                await self._backend.disconnect()

    @property
    def healthy(self) -> bool:
        """False while the Redis connection is down, or if the fan-out task has died."""
        if self._fanout is None or self._fanout.done():
            return False
        return self._redis is None or self._redis.connected.is_set()

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    async def _run_fanout(self) -> None:
        while True:
            event = await self._backend.next_published()
            for queue in tuple(self._subscribers.get(event.channel, ())):
                try:
                    queue.put_nowait(event.message)
                except asyncio.QueueFull:
                    while not queue.empty():
                        queue.get_nowait()
                    queue.put_nowait(RESYNC)

    async def publish(self, channel: str, message: str) -> None:
        await self._backend.publish(channel, message)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """Yield an iterator of the channel's messages until the block exits."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=self._queue_size)
        async with self._lock:
            subscribers = self._subscribers.setdefault(channel, set())
            subscribers.add(queue)
            if len(subscribers) == 1:
                await self._backend.subscribe(channel)

        async def messages() -> AsyncIterator[str]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            async with self._lock:
                subscribers = self._subscribers.get(channel, set())
                subscribers.discard(queue)
                if not subscribers:
                    self._subscribers.pop(channel, None)
                    with contextlib.suppress(Exception):
                        await self._backend.unsubscribe(channel)


class channels:
    """Every pub/sub channel name, in one place."""

    @staticmethod
    def session_availability(session_id: str) -> str:
        return f"bo:{{session:{session_id}}}:availability"

    @staticmethod
    def queue(event_id: str) -> str:
        return f"bo:queue:{event_id}"

    @staticmethod
    def order(order_id: str) -> str:
        return f"bo:order:{order_id}"

    @staticmethod
    def account(user_id: str) -> str:
        return f"bo:account:{user_id}"

    @staticmethod
    def tenant_sales(tenant_id: str) -> str:
        return f"bo:sales:{tenant_id}"

    @staticmethod
    def user_notifications(user_id: str) -> str:
        return f"bo:notify:{user_id}"

    @staticmethod
    def catalog_invalidation() -> str:
        """Admin writes tell every process which cached catalog reads to drop."""
        return "bo:catalog:invalidate"
