"""The event loop ``boxoffice serve`` runs on: uvloop, accepting every waiting connection at once.

libuv (and so uvloop) accepts one connection per turn of the event loop (libuv #3696:
level-triggered polling brings the next one a turn later). On an idle server a turn is
microseconds. At an on-sale it is not: a turn of subscriber pushes and checkout work takes
10-20 ms, so the burst of fresh connections one admission tick sends (every admitted buyer's
hold) was let in one per turn. In the flash-sale bench the 25th hold of a tick reached the
application 300 ms after it was sent, having waited for nothing but its ``accept``. asyncio's
own loop accepts up to the backlog per readiness; this loop does the same on uvloop: its TCP
servers are a listening socket watched with ``add_reader`` that accepts until the kernel's
queue is empty, each connection handed to uvloop's transports (``connect_accepted_socket``).

With ``--workers N`` the workers share one listening socket: the kernel wakes those waiting in
``epoll`` and each takes what it can, so a burst goes to the workers that are idle, not to one
that is busy (libuv's reason for accepting one at a time was fairness between processes that
are all polling; a busy one is not). Each accept loop is bounded by the backlog.

TLS servers and Unix sockets keep uvloop's own server. Without uvloop (Windows) uvicorn's
default loop is used, which accepts greedily already.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("boxoffice.serving")

ACCEPT_PAUSE_SECONDS = 1.0  # out of file descriptors: stop accepting this long (as asyncio)
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class GreedyServer(asyncio.AbstractServer):
    """An ``asyncio.Server`` look-alike over listening sockets, for uvicorn: ``close``,
    ``wait_closed``, ``sockets``, ``is_serving``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        listeners: Iterable[socket.socket],
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        backlog: int,
    ) -> None:
        self._loop = loop
        self._listeners = list(listeners)
        self._factory = protocol_factory
        self._backlog = max(1, backlog)
        self._serving = False
        self._handing_over: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        for listener in self._listeners:
            listener.setblocking(False)
            self._loop.add_reader(listener.fileno(), self._accept, listener)
        self._serving = True

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self._backlog):
            try:
                conn, _address = listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # the queue is empty
            except ConnectionAbortedError:
                continue  # gone before we took it
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                log.error("accept failed (%s); pausing for %s s", exc, ACCEPT_PAUSE_SECONDS)
                self._loop.remove_reader(listener.fileno())
                self._loop.call_later(ACCEPT_PAUSE_SECONDS, self._resume, listener)
                return
            self._hand_over(conn)

    def _resume(self, listener: socket.socket) -> None:
        if self._serving:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _hand_over(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
        self._handing_over.add(task)
        task.add_done_callback(self._handed_over)

    def _handed_over(self, task: asyncio.Task[Any]) -> None:
        self._handing_over.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not open an accepted connection", exc_info=task.exception())

    # -- asyncio.AbstractServer ------------------------------------------------------------

    def close(self) -> None:
        if not self._serving and not self._listeners:
            return
        self._serving = False
        for listener in self._listeners:
            if listener.fileno() != -1:
                self._loop.remove_reader(listener.fileno())
            listener.close()
        self._listeners = []

    async def wait_closed(self) -> None:
        """The listeners are closed by ``close``; connections are the caller's (uvicorn
        shuts its own down before it asks)."""
        if self._handing_over:
            await asyncio.gather(*self._handing_over, return_exceptions=True)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def start_serving(self) -> None:
        if not self._serving:
            self.start()

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.Future()

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._listeners)


def listening_sockets(host: str | None, port: int, backlog: int) -> list[socket.socket]:
    """Bound, listening TCP sockets for ``host`` (every address it resolves to; all
    interfaces when empty) and ``port``, as ``loop.create_server`` makes them."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    made: list[socket.socket] = []
    seen: set[Any] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            listener = socket.socket(family, kind, proto)
            made.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(backlog)
    except BaseException:
        for listener in made:
            listener.close()
        raise
    return made


try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a dependency wherever it builds
    uvloop = None  # type: ignore[assignment]


if uvloop is not None:

    class GreedyAcceptLoop(uvloop.Loop):
        """uvloop, with TCP servers that accept every waiting connection per turn."""

        async def create_server(  # type: ignore[override]
            self,
            protocol_factory: Callable[[], asyncio.BaseProtocol],
            host: str | None = None,
            port: int | None = None,
            *,
            sock: socket.socket | None = None,
            backlog: int = 100,
            ssl: Any = None,
            start_serving: bool = True,
            **options: Any,
        ) -> asyncio.AbstractServer:
            if ssl is not None or options or (sock is not None and sock.family == socket.AF_UNIX):
                upstream: Any = super().create_server
                return await upstream(
                    protocol_factory,
                    host,
                    port,
                    sock=sock,
                    backlog=backlog,
                    ssl=ssl,
                    start_serving=start_serving,
                    **options,
                )
            if sock is not None:
                listeners = [sock]
                sock.listen(backlog)
            else:
                listeners = await self.run_in_executor(
                    None, listening_sockets, host, port or 0, backlog
                )
            server = GreedyServer(self, listeners, protocol_factory, backlog)
            if start_serving:
                server.start()
            return server


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvicorn's loop factory (``loop="boxoffice.serving:new_event_loop"``)."""
    if uvloop is None:  # pragma: no cover
        return asyncio.new_event_loop()
    return GreedyAcceptLoop()
