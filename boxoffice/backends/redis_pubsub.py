"""A broadcaster backend over Redis pub/sub that survives Redis going away.

broadcaster's own Redis backend can miss its first subscription (its listener may start
``listen()`` before the subscription lands, return at once and wait forever) and never
reconnects (encode/broadcaster#144). This one reads with ``get_message`` in one loop, and on a
lost connection reconnects with backoff, subscribes again to every channel and delivers
``RESYNC`` on each of them, so subscribers know they may have missed messages and re-read
their snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from broadcaster._backends.base import BroadcastBackend
from broadcaster._base import Event
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from boxoffice.backends.redis_client import connect

log = logging.getLogger("boxoffice.broker")

RESYNC = "\x00resync"


class RedisPubSubBackend(BroadcastBackend):
    def __init__(self, url: str) -> None:
        self._url = url
        self._publisher = connect(url)
        self._subscriber: Redis | None = None
        self._pubsub: Any = None
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def connect(self) -> None:
        await self._open()
        self._reader = asyncio.create_task(self._read(), name="broker-reader")

    async def _open(self) -> None:
        # No retries here: a dropped connection must surface, so that we resubscribe and
        # tell subscribers to resync (a silent retry would hide the gap).
        self._subscriber = Redis.from_url(self._url, socket_keepalive=True)
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        await self._subscriber.ping()
        if self._channels:
            await self._pubsub.subscribe(*self._channels)
        self.connected.set()

    async def _close(self) -> None:
        self.connected.clear()
        with contextlib.suppress(Exception):
            if self._pubsub is not None:
                await self._pubsub.aclose()
        with contextlib.suppress(Exception):
            if self._subscriber is not None:
                await self._subscriber.aclose()

    async def disconnect(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._close()
        await self._publisher.aclose()

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.add(channel)
            if self.connected.is_set():
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self._pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            self._channels.discard(channel)
            if self.connected.is_set():
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._publisher.publish(channel, message)

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def _read(self) -> None:
        delay = 0.1
        while True:
            try:
                if not self._channels:
                    await asyncio.sleep(0.05)
                    continue
                message = await self._pubsub.get_message(timeout=1.0)
                delay = 0.1
                if message is not None and message.get("type") == "message":
                    channel = message["channel"]
                    data = message["data"]
                    await self._queue.put(
                        Event(
                            channel=channel.decode() if isinstance(channel, bytes) else channel,
                            message=data.decode() if isinstance(data, bytes) else data,
                        )
                    )
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError) as exc:
                log.warning("broker connection lost (%s); reconnecting", type(exc).__name__)
                await self._close()
                while True:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    try:
                        async with self._lock:
                            await self._open()
                        break
                    except (RedisConnectionError, RedisTimeoutError, OSError) as again:
                        log.warning("broker reconnect failed (%s)", type(again).__name__)
                        await self._close()
                self.reconnects += 1
                log.info("broker reconnected; resyncing %d channels", len(self._channels))
                for channel in list(self._channels):
                    await self._queue.put(Event(channel=channel, message=RESYNC))
