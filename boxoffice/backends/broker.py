"""Pub/sub between processes, on broadcaster's backend interface: Redis pub/sub (many
processes), or in-process delivery (one process).

The fan-out here replaces broadcaster's ``Broadcast`` class, which races when two subscribers
of one channel arrive together (the second overwrites the first's queue, which then never
receives) and keeps unbounded queues; its memory backend also delivers messages published
before a subscription existed, unlike Redis. Here subscribe/unsubscribe are serialised, each
subscriber's queue is bounded, and a subscriber that falls behind — or whose Redis connection
was restored — receives ``RESYNC``: it may have missed messages and should re-read the state.

A message for thousands of subscribers is delivered ``FANOUT_SLICE`` subscribers per
event-loop turn: every subscriber woken runs its whole reaction (often a WebSocket push) in
the turn that follows, so waking all of them at once blocked the loop for hundreds of
milliseconds, and the requests that came in meanwhile (a buyer's hold) waited behind the lot.
In slices, the loop reads its sockets between them. A subscriber may also give a ``wants``
filter, run in the fan-out, so that a message wakes only those who will act on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from boxoffice import gc_tuning
from boxoffice.backends.redis_pubsub import RESYNC, RedisPubSubBackend

__all__ = ["RESYNC", "URGENT", "Broker", "Wants", "channels"]

QUEUE_SIZE = 1000
FANOUT_SLICE = 16  # subscribers woken per event-loop turn

# a subscriber's filter: falsy when it would do nothing with the message (``RESYNC`` always
# passes), ``URGENT`` to be woken in the first slices. It runs in the fan-out, before the
# subscriber has caught up with the messages already queued for it, so it must err towards
# passing on state it has not seen yet.
Wants = Callable[[str], int]
URGENT = 2


class Broker:
    def __init__(self, url: str, *, queue_size: int = QUEUE_SIZE) -> None:
        self.url = url
        self._redis: RedisPubSubBackend | None = None
        if url.startswith(("redis://", "rediss://")):
            self._redis = RedisPubSubBackend(url)
        self._queue_size = queue_size
        self._subscribers: dict[str, dict[asyncio.Queue[str], Wants | None]] = {}
        self._lock = asyncio.Lock()
        self._fanout: asyncio.Task[None] | None = None
        self._connected = False

    async def connect(self) -> None:
        self._connected = True
        if self._redis is not None:
            await self._redis.connect()
            self._fanout = asyncio.create_task(self._run_fanout(self._redis), name="broker-fanout")

    async def disconnect(self) -> None:
        self._connected = False
        if self._fanout is not None:
            self._fanout.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._fanout
            self._fanout = None
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.disconnect()

    @property
    def healthy(self) -> bool:
        """False while the Redis connection is down, or if the fan-out task has died."""
        if self._redis is None:
            return self._connected
        if self._fanout is None or self._fanout.done():
            return False
        return self._redis.connected.is_set()

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    async def _deliver(self, channel: str, message: str) -> None:
        urgent: list[asyncio.Queue[str]] = []
        rest: list[asyncio.Queue[str]] = []
        for queue, wants in tuple(self._subscribers.get(channel, {}).items()):
            wanted = True if wants is None or message == RESYNC else wants(message)
            if wanted:
                (urgent if wanted == URGENT else rest).append(queue)
        for woken, queue in enumerate(urgent + rest, 1):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(RESYNC)
            if woken % FANOUT_SLICE == 0:
                await asyncio.sleep(0)  # the woken run, and the loop reads its sockets
        gc_tuning.after_wave(len(urgent) + len(rest))

    async def _run_fanout(self, backend: RedisPubSubBackend) -> None:
        while True:
            event = await backend.next_published()
            await self._deliver(event.channel, event.message)

    async def publish(self, channel: str, message: str) -> None:
        """Deliver to the channel's current subscribers (like Redis: none, no delivery)."""
        if self._redis is None:
            await self._deliver(channel, message)
        else:
            await self._redis.publish(channel, message)

    @asynccontextmanager
    async def subscribe(
        self, channel: str, *, latest_only: bool = False, wants: Wants | None = None
    ) -> AsyncIterator[AsyncIterator[str]]:
        """Yield an iterator of the channel's messages until the block exits.

        ``latest_only`` (for channels whose every message carries the whole state, like the
        queue's watermark): a subscriber that fell behind gets only the newest of the
        messages waiting for it — or ``RESYNC`` if one of them was — so a slow consumer does
        its work once per catch-up instead of once per message.

        ``wants`` (see ``Wants``): only the messages it lets through are queued."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=self._queue_size)
        async with self._lock:
            subscribers = self._subscribers.setdefault(channel, {})
            subscribers[queue] = wants
            if len(subscribers) == 1 and self._redis is not None:
                await self._redis.subscribe(channel)

        async def messages() -> AsyncIterator[str]:
            while True:
                message = await queue.get()
                if latest_only:
                    while not queue.empty():
                        newer = queue.get_nowait()
                        message = RESYNC if RESYNC in (message, newer) else newer
                yield message

        try:
            yield messages()
        finally:
            async with self._lock:
                subscribers = self._subscribers.get(channel, {})
                subscribers.pop(queue, None)
                if not subscribers:
                    self._subscribers.pop(channel, None)
                    if self._redis is not None:
                        with contextlib.suppress(Exception):
                            await self._redis.unsubscribe(channel)


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
