"""Live availability per session, for the ``seatAvailability`` subscription.

One ``_Feed`` per session per process listens to the session's channel once, keeps the
current state (a snapshot kept current by the ledger's deltas) and, at most once per
``interval`` (~100 ms), sends every local subscriber one merged update. Subscribers get a full
snapshot first. Deltas carry absolute states ("seat X is now H"), so an update that overlaps
what a subscriber already has is harmless: apply an update when its ``previous_version`` is at
most your version; if it is larger, you missed something — re-read the snapshot. The feed
itself re-reads the snapshot when the ledger reloads, the broker reconnects (``RESYNC``) or a
version is skipped, and pushes it to everyone as a snapshot update. Redis can also lose the
ledger without dropping the connection (``FLUSHALL``, a failover to an empty replica): nothing
is published then, so every ``check_seconds`` the feed asks whether its session is still
loaded and, if not, re-reads the snapshot (which rebuilds the ledger from the database and
tells every other process's feed too).

A subscriber that cannot keep up (its small buffer is full) is sent a fresh snapshot instead
of an ever-growing backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import orjson

from boxoffice.backends.broker import RESYNC, Broker, channels
from boxoffice.backends.seat_ledger import Snapshot

log = logging.getLogger("boxoffice.availability")

SnapshotLoader = Callable[[str], Awaitable[Snapshot]]
LoadedCheck = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class AvailabilityUpdate:
    session_id: str
    version: int
    previous_version: int | None  # None on a snapshot
    tiers: dict[str, int]  # tier id -> units the public can hold
    seats: dict[str, str]  # seat id -> "A" | "H" | "S" | "B"
    snapshot: bool


class _Subscriber:
    __slots__ = ("queue",)

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[AvailabilityUpdate] = asyncio.Queue(maxsize=size)


class _Feed:
    def __init__(self, hub: AvailabilityFeeds, session_id: str) -> None:
        self.hub = hub
        self.session_id = session_id
        self.subscribers: set[_Subscriber] = set()
        self.watchers = 0
        self.version = 0
        self.flushed_version = 0
        self.tiers: dict[str, int] = {}
        self.seats: dict[str, str] = {}
        self.pending_tiers: dict[str, int] = {}
        self.pending_seats: dict[str, str] = {}
        self._snapshot: AvailabilityUpdate | None = None
        self._subscription: AbstractAsyncContextManager[AsyncIterator[str]] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._subscription = self.hub.broker.subscribe(
            channels.session_availability(self.session_id)
        )
        messages = await self._subscription.__aenter__()
        await self.reload(broadcast=False)  # after subscribing: nothing can fall in between
        self._tasks = [
            asyncio.create_task(self._listen(messages), name=f"feed:{self.session_id}"),
            asyncio.create_task(self._flush_loop(), name=f"feed-flush:{self.session_id}"),
        ]
        if self.hub.is_loaded is not None:
            self._tasks.append(
                asyncio.create_task(self._check_loop(), name=f"feed-check:{self.session_id}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.__aexit__(None, None, None)

    def snapshot_update(self) -> AvailabilityUpdate:
        if self._snapshot is None or self._snapshot.version != self.version:
            self._snapshot = AvailabilityUpdate(
                session_id=self.session_id,
                version=self.version,
                previous_version=None,
                tiers=dict(self.tiers),
                seats=dict(self.seats),
                snapshot=True,
            )
        return self._snapshot

    async def reload(self, *, broadcast: bool = True) -> None:
        """Re-read the state. A snapshot no newer than what the feed has is dropped: two
        reloads that overlap (a lost ledger is noticed by the check and by the rebuild's own
        message) must neither send the same version twice nor go back to an older one."""
        snap = await self.hub.load_snapshot(self.session_id)
        if snap.version <= self.version:
            return
        self.version = self.flushed_version = snap.version
        self.tiers = dict(snap.available)
        self.seats = {seat: state.value for seat, state in snap.seats.items()}
        self.pending_tiers.clear()
        self.pending_seats.clear()
        if broadcast:
            update = self.snapshot_update()
            for subscriber in tuple(self.subscribers):
                self.offer(subscriber, update)

    def offer(self, subscriber: _Subscriber, update: AvailabilityUpdate) -> None:
        try:
            subscriber.queue.put_nowait(update)
        except asyncio.QueueFull:
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()
            subscriber.queue.put_nowait(self.snapshot_update())

    def apply(self, message: dict[str, object]) -> bool:
        """Apply one ledger message; False when the state must be re-read instead."""
        version = int(message["v"])  # type: ignore[call-overload]
        if version <= self.version:
            return True  # already part of the state (e.g. the load our own snapshot caused)
        if message.get("f"):
            return False
        if version != self.version + 1:
            return False  # a message went missing
        tiers: dict[str, int] = message.get("t") or {}  # type: ignore[assignment]
        seats: dict[str, str] = message.get("s") or {}  # type: ignore[assignment]
        self.tiers.update(tiers)
        self.seats.update(seats)
        self.pending_tiers.update(tiers)
        self.pending_seats.update(seats)
        self.version = version
        return True

    async def _listen(self, messages: AsyncIterator[str]) -> None:
        async for raw in messages:
            try:
                ok = raw != RESYNC and self.apply(orjson.loads(raw))
                if not ok:
                    await self.reload()
            except Exception:
                log.exception("availability feed %s failed to apply a message", self.session_id)
                with contextlib.suppress(Exception):
                    await self.reload()

    async def _check_loop(self) -> None:
        """Re-read the snapshot when the ledger lost the session without a word."""
        assert self.hub.is_loaded is not None
        while True:
            await asyncio.sleep(self.hub.check_seconds)
            try:
                if not await self.hub.is_loaded(self.session_id):
                    log.warning("the ledger lost session %s; reloading it", self.session_id)
                    await self.reload()
            except Exception as exc:  # Redis down: the broker's RESYNC will follow its return
                log.info("availability check of %s failed: %s", self.session_id, exc)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.hub.interval)
            if not (self.pending_tiers or self.pending_seats):
                continue
            update = AvailabilityUpdate(
                session_id=self.session_id,
                version=self.version,
                previous_version=self.flushed_version,
                tiers=self.pending_tiers,
                seats=self.pending_seats,
                snapshot=False,
            )
            self.pending_tiers, self.pending_seats = {}, {}
            self.flushed_version = self.version
            for subscriber in tuple(self.subscribers):
                self.offer(subscriber, update)


class AvailabilityFeeds:
    """The process's feeds, keyed by session. ``load_snapshot`` reads the ledger (loading it
    from the database first when needed); ``is_loaded`` (optional) tells whether the ledger
    still has a session, asked every ``check_seconds``."""

    def __init__(
        self,
        broker: Broker,
        load_snapshot: SnapshotLoader,
        *,
        interval: float = 0.1,
        subscriber_buffer: int = 16,
        is_loaded: LoadedCheck | None = None,
        check_seconds: float = 2.0,
    ) -> None:
        self.broker = broker
        self.load_snapshot = load_snapshot
        self.is_loaded = is_loaded
        self.check_seconds = check_seconds
        self.interval = interval
        self.subscriber_buffer = subscriber_buffer
        self._feeds: dict[str, _Feed] = {}
        self._lock = asyncio.Lock()

    def known_available(self, session_id: str, tier_id: str) -> int | None:
        """What this process currently knows of a tier's public availability (None: no feed)."""
        feed = self._feeds.get(session_id)
        if feed is None:
            return None
        return feed.tiers.get(tier_id)

    def subscriber_count(self, session_id: str | None = None) -> int:
        if session_id is not None:
            feed = self._feeds.get(session_id)
            return len(feed.subscribers) if feed else 0
        return sum(len(f.subscribers) for f in self._feeds.values())

    async def _acquire(self, session_id: str) -> _Feed:
        async with self._lock:
            feed = self._feeds.get(session_id)
            if feed is None:
                feed = _Feed(self, session_id)
                await feed.start()
                self._feeds[session_id] = feed
            return feed

    async def _release(self, feed: _Feed) -> None:
        async with self._lock:
            if (
                not feed.subscribers
                and feed.watchers == 0
                and self._feeds.get(feed.session_id) is feed
            ):
                del self._feeds[feed.session_id]
                await feed.stop()

    @asynccontextmanager
    async def subscribe(self, session_id: str) -> AsyncIterator[AsyncIterator[AvailabilityUpdate]]:
        """Yield the session's updates: a snapshot first, then merged changes."""
        feed = await self._acquire(session_id)
        subscriber = _Subscriber(self.subscriber_buffer)
        subscriber.queue.put_nowait(feed.snapshot_update())
        feed.subscribers.add(subscriber)

        async def updates() -> AsyncIterator[AvailabilityUpdate]:
            while True:
                yield await subscriber.queue.get()

        try:
            yield updates()
        finally:
            feed.subscribers.discard(subscriber)
            await self._release(feed)

    @asynccontextmanager
    async def watching(self, session_id: str) -> AsyncIterator[None]:
        """Keep the session's feed alive while the block runs (no subscriber needed)."""
        feed = await self._acquire(session_id)
        feed.watchers += 1
        try:
            yield
        finally:
            feed.watchers -= 1
            await self._release(feed)

    async def close(self) -> None:
        async with self._lock:
            feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            await feed.stop()
