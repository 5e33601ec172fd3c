"""An in-process cache of hot catalog reads (event detail, home), with short TTLs.

Admin writes invalidate at once in the writing process and, through the broker channel
``channels.catalog_invalidation()``, in every other process. A read that raced with an
invalidation is not stored: each invalidation bumps a generation, and a value loaded under an
older generation is returned to its caller but never cached. Concurrent misses of one key share
one load. When the broker reconnects (it may have missed messages) everything is dropped.

Availability is never cached here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, TypeVar

import orjson

from boxoffice.backends.broker import RESYNC, Broker, channels
from boxoffice.ids import new_id

log = logging.getLogger("boxoffice.catalog_cache")

T = TypeVar("T")

DEFAULT_TTL_SECONDS = 5.0
MAX_ENTRIES = 4096


def event_key(event_id: str) -> tuple[str, str]:
    return ("event", event_id)


def home_key(city: str | None, tenant_id: str | None) -> tuple[str, str | None, str | None]:
    return ("home", city, tenant_id)


class CatalogCache:
    def __init__(
        self,
        broker: Broker,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._broker = broker
        self.ttl_seconds = ttl_seconds
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._loading: dict[Hashable, asyncio.Task[Any]] = {}
        self._generation = 0
        self._origin = new_id()
        self._listener: asyncio.Task[None] | None = None
        self._followers: list[Callable[[set[str] | None], None]] = []
        self._session_followers: list[Callable[[set[str]], Awaitable[None]]] = []
        self.hits = 0
        self.misses = 0

    async def start(self) -> None:
        """Listen for invalidations from other processes (returns once subscribed)."""
        ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(ready), name="catalog-cache")
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, self._listener}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._listener.done():
            self._listener.result()

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        self.clear()

    async def _listen(self, ready: asyncio.Event) -> None:
        async with self._broker.subscribe(channels.catalog_invalidation()) as messages:
            ready.set()
            async for message in messages:
                try:
                    self._apply(message)
                except Exception:  # a bad message must not stop the listener
                    log.exception("bad catalog invalidation message")
                    self.clear()

    def _apply(self, message: str) -> None:
        if message == RESYNC:
            self.clear()
            return
        payload = orjson.loads(message)
        if payload.get("origin") == self._origin:
            return  # our own, applied when it was sent
        self._drop(payload.get("events") or (), home=bool(payload.get("home")))

    def follow(self, on_change: Callable[[set[str] | None], None]) -> None:
        """Also tell ``on_change`` which events changed (None: everything may have), so other
        per-process caches of catalog data (the hold path's session rules) drop with us."""
        self._followers.append(on_change)

    def follow_sessions(self, on_change: Callable[[set[str]], Awaitable[None]]) -> None:
        """Be told (in the writing process only) which sessions' tiers or seats changed, so
        the shared seat ledger is rebuilt once for them."""
        self._session_followers.append(on_change)

    def _tell(self, event_ids: set[str] | None) -> None:
        for follower in self._followers:
            follower(event_ids)

    def _drop(self, event_ids: Iterable[str], *, home: bool) -> None:
        self._generation += 1
        event_ids = set(event_ids)
        self._tell(event_ids)
        for event_id in event_ids:
            self._entries.pop(event_key(event_id), None)
        if home:
            for key in [k for k in self._entries if isinstance(k, tuple) and k[0] == "home"]:
                del self._entries[key]

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._tell(None)

    def get(self, key: Hashable) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def _put(self, key: Hashable, value: Any) -> None:
        self._entries[key] = (time.monotonic() + self.ttl_seconds, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def get_or_load(self, key: Hashable, load: Callable[[], Awaitable[T]]) -> T:
        """The cached value of ``key``, or ``load()``'s. Concurrent misses share one load,
        which runs as its own task (a caller that goes away does not cancel it for the
        others); its value is cached unless an invalidation happened meanwhile. ``None``
        results are not cached; a failed load fails every caller waiting for it."""
        cached = self.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        task = self._loading.get(key)
        if task is None:
            task = asyncio.create_task(self._load(key, load, self._generation))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        return await asyncio.shield(task)

    async def _load(self, key: Hashable, load: Callable[[], Awaitable[T]], generation: int) -> T:
        try:
            value = await load()
        finally:
            self._loading.pop(key, None)
        if value is not None and generation == self._generation:
            self._put(key, value)
        return value

    async def invalidate(
        self, *, event_ids: Iterable[str] = (), home: bool = True, sessions: Iterable[str] = ()
    ) -> None:
        """Drop the events' detail (and the home pages) here and in every other process.
        ``sessions`` whose tiers or seats changed are also handed to the session followers
        here. A failed publish is logged: other processes then serve the old value until
        its TTL."""
        ids = sorted(set(event_ids))
        self._drop(ids, home=home)
        changed = set(sessions)
        if changed:
            for follower in self._session_followers:
                await follower(changed)
        message = orjson.dumps({"origin": self._origin, "events": ids, "home": home}).decode()
        try:
            await self._broker.publish(channels.catalog_invalidation(), message)
        except Exception:
            log.exception("could not publish a catalog invalidation")


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a load's failure as seen even if every caller went away meanwhile."""
    if not task.cancelled():
        task.exception()
