"""A small pipelining Redis client for the hot path: scripts and plain reads, not pub/sub.

redis-py spends 50-75 us of CPU per command here (connection pool checkout, retry and timeout
wrappers, observability hooks); one asyncio protocol writing commands as they come and
resolving replies in order with hiredis spends 8-13 us (``bench/RESULTS.md``). Concurrent
callers share one connection (pipelining without a pipeline object). It serves the seat
ledger's scripts, the revocation markers and the rate limiter (on every hold: the markers
with the rate limit, then the ledger, then on a queue session the queue token's spending),
and the calls every subscriber of a waiting room makes at once (its entry's status, its
subscription slot); everything else keeps redis-py.

Each command is written at once. Batching one event-loop turn's commands into one write saved
a few microseconds of system calls, but made every command wait for the next turn; under load
(turns full of subscriber pushes and checkout work) that was 10-20 ms per round trip.

Semantics:

- Replies come back exactly as redis-py gives them without ``decode_responses`` (bytes, ints,
  lists); error replies raise ``redis.exceptions.ResponseError`` (``NoScriptError`` for
  NOSCRIPT, which scripts handle by loading themselves once).
- A command is never sent twice: if the connection drops before the reply, the caller gets
  ``redis.exceptions.ConnectionError`` (a hold script may have run; its caller decides). A call
  made while no connection is up connects first (with a short backoff after a failure).
- A reply that does not come within ``timeout`` seconds closes the connection, failing every
  command still waiting on it.

Never use it for blocking commands (BLPOP, WAIT, ...): they would stall every caller behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Arg = str | bytes | int | float


def _encode(args: Sequence[Arg]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)  # the exact types first: nearly every argument is one
        if kind is str:
            data = arg.encode()  # type: ignore[union-attr]
        elif kind is int:
            data = b"%d" % arg  # type: ignore[str-format]
        elif isinstance(arg, bytes):
            data = arg
        elif isinstance(arg, str):
            data = arg.encode()
        elif isinstance(arg, int | float):
            data = repr(arg).encode()
        else:
            raise TypeError(f"cannot send {type(arg).__name__} to Redis")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _Protocol(asyncio.Protocol):
    """One connection: commands written in order, replies matched to waiters in order."""

    def __init__(self, timeout: float) -> None:
        self._reader = hiredis.Reader()
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        self._timeout = timeout
        self._last_reply = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self._transport = cast(asyncio.Transport, transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        self._last_reply = time.monotonic()
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            waiter = self._waiters.popleft()
            if waiter.done():
                continue  # its caller was cancelled; the reply is dropped in order
            if isinstance(reply, hiredis.ReplyError):
                message = str(reply)
                error = NoScriptError if message.startswith("NOSCRIPT") else ResponseError
                waiter.set_exception(error(message))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        error = RedisConnectionError(f"Redis connection lost: {exc or 'closed'}")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        """Write one encoded command now; its reply resolves the returned future."""
        if self.closed or self._transport is None:
            raise RedisConnectionError("Redis connection is closed")
        waiter = asyncio.get_running_loop().create_future()
        if not self._waiters:
            self._last_reply = time.monotonic()  # the clock runs from the oldest wait
        self._waiters.append(waiter)
        self._transport.write(payload)
        return waiter

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._watchdog = loop.call_later(min(1.0, self._timeout), self._check)

    def _check(self) -> None:
        if self.closed:
            return
        if self._waiters and time.monotonic() - self._last_reply > self._timeout:
            self.abort(RedisTimeoutError(f"no reply from Redis within {self._timeout} s"))
            return
        self._arm()

    def abort(self, error: Exception) -> None:
        waiters = list(self._waiters)
        self._waiters.clear()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
        if self._transport is not None:
            self._transport.abort()


_tracer: Any = None  # set by trace_commands() when tracing is on; None costs one check
_client_kind: Any = None


def trace_commands(provider: Any) -> None:
    """Give every command a CLIENT span (what RedisInstrumentor does for redis-py)."""
    global _tracer, _client_kind
    from opentelemetry.trace import SpanKind, get_tracer

    _tracer = get_tracer("boxoffice.redis", tracer_provider=provider)
    _client_kind = SpanKind.CLIENT


class FastRedis:
    """See the module docstring. ``url`` as for redis-py (redis://, rediss://, unix://)."""

    def __init__(self, url: str, *, timeout: float = 10.0, connect_timeout: float = 5.0) -> None:
        self._options: dict[str, Any] = dict(parse_url(url))
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._failed_at = 0.0

    async def execute_command(self, *args: Arg) -> Any:
        if _tracer is None:
            return await self._send(args)
        name = args[0].decode() if isinstance(args[0], bytes) else str(args[0])
        with _tracer.start_as_current_span(
            name, kind=_client_kind, attributes={"db.system": "redis"}
        ):
            return await self._send(args)

    async def _send(self, args: tuple[Arg, ...]) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        return await protocol.send(_encode(args))

    def submit(self, *args: Arg) -> asyncio.Future[Any] | None:
        """Write a command now and return the future of its reply, so that the caller's next
        command can share its round trip; None when no connection is up, or commands are
        traced (the caller then awaits ``execute_command``, which connects)."""
        protocol = self._protocol
        if protocol is None or protocol.closed or _tracer is not None:
            return None
        return protocol.send(_encode(args))

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        return list(await self.execute_command("MGET", *keys))

    def register_script(self, source: str) -> FastScript:
        return FastScript(self, source)

    async def _connect(self) -> _Protocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            wait = 0.05 - (time.monotonic() - self._failed_at)
            if wait > 0:
                await asyncio.sleep(wait)  # no reconnect storm against a Redis that is down
            try:
                protocol = await asyncio.wait_for(self._open(), self._connect_timeout)
            except (OSError, TimeoutError, ResponseError) as exc:
                self._failed_at = time.monotonic()
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
            self._protocol = protocol
            return protocol

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self._options
        timeout = self._timeout
        if "path" in options:
            _, protocol = await loop.create_unix_connection(
                lambda: _Protocol(timeout), options["path"]
            )
        else:
            secure = ssl.create_default_context() if _is_ssl(options) else None
            _, protocol = await loop.create_connection(
                lambda: _Protocol(timeout),
                options.get("host", "localhost"),
                int(options.get("port", 6379)),
                ssl=secure,
            )
        try:
            if options.get("password"):
                credentials = [options["password"]]
                if options.get("username"):
                    credentials.insert(0, options["username"])
                await protocol.send(_encode(["AUTH", *credentials]))
            if int(options.get("db", 0) or 0):
                await protocol.send(_encode(["SELECT", int(options["db"])]))
        except BaseException:
            protocol.abort(RedisConnectionError("setup failed"))
            raise
        return protocol

    async def aclose(self) -> None:
        if self._protocol is not None and not self._protocol.closed:
            self._protocol.abort(RedisConnectionError("client closed"))
        self._protocol = None


def _is_ssl(options: dict[str, Any]) -> bool:
    connection_class = options.get("connection_class")
    return connection_class is not None and "SSL" in getattr(connection_class, "__name__", "")


class FastScript:
    """A Lua script called by its SHA1, loaded on first use and after a SCRIPT FLUSH."""

    def __init__(self, client: FastRedis, source: str) -> None:
        self._client = client
        self._source = source
        # Redis names scripts by SHA-1: an identifier here, not a security measure
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[Arg] = (), args: Sequence[Arg] = ()) -> Any:
        try:
            return await self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:
            loaded = await self._client.execute_command("SCRIPT", "LOAD", self._source)
            with contextlib.suppress(AttributeError):
                loaded = loaded.decode()
            if loaded != self.sha:  # pragma: no cover - Redis hashes the same bytes we do
                raise ResponseError(f"script loaded as {loaded}, expected {self.sha}") from None
            return await self._client.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
