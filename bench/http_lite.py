"""A minimal HTTP/1.1 client for load generators: one keep-alive connection per simulated
browser, requests one at a time, a few tens of microseconds of CPU each.

httpx spends about a millisecond of CPU per request in a process that also holds thousands
of sockets (its request and response models, httpcore's pool, anyio streams, a task per
connection). In ``bench.flash_sale`` the 50 buyers one admission tick lets in all send their
hold at once, from two client processes on the same two cores as the servers: the last of
them left the client ~100-250 ms after its admission arrived, which the benchmark then
counted as hold latency. Here one asyncio ``Protocol`` per connection parses the answer in
``data_received``.

Like a browser, a request on a kept-alive connection that the server closed before answering
anything (uvicorn drops idle connections after 5 s) is sent again once on a fresh connection;
any other failure is the caller's. Loopback benchmarks only: no TLS, no proxies, no
redirects; answers must carry ``Content-Length`` or be chunked.
"""

from __future__ import annotations

import asyncio

__all__ = ["Answer", "Connection"]


class Answer:
    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[Answer] | None = None
        self.heard = False  # any byte of the current answer arrived
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection closed: {exc or 'by the peer'}"))

    def data_received(self, data: bytes) -> None:
        self.heard = True
        self._buffer += data
        answer = self._parse()
        if answer is not None and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(answer)

    def _parse(self) -> Answer | None:
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buffer[:end]).split(b"\r\n")
        status = int(head[0][9:12])
        length = -1
        chunked = False
        for line in head[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        start = end + 4
        if chunked:
            body, used = _dechunk(buffer, start)
            if body is None:
                return None
            del buffer[:used]
            return Answer(status, body)
        if length < 0:
            length = 0
        if len(buffer) < start + length:
            return None
        body = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return Answer(status, body)


def _dechunk(buffer: bytearray, at: int) -> tuple[bytes | None, int]:
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None, 0
        size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", at - 2)
            if trailer_end < 0:
                return None, 0
            return b"".join(parts), trailer_end + 4
        if len(buffer) < at + size + 2:
            return None, 0
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


class Connection:
    """A browser's connection to one server: opened on first use, kept alive, reopened after
    the server closed it."""

    def __init__(self, host: str, port: int) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("http_lite only talks to loopback")
        self.host = host
        self.port = port
        self._protocol: _Protocol | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        reused = self._protocol is not None and not self._protocol.closed
        try:
            return await self._exchange(raw)
        except ConnectionError:
            protocol = self._protocol
            if not reused or protocol is None or protocol.heard:
                raise
            self._protocol = None  # the server let it go while idle: once more, afresh
            return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> Answer:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            loop = asyncio.get_running_loop()
            _transport, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            self._protocol = protocol
        assert protocol.transport is not None
        waiter = asyncio.get_running_loop().create_future()
        protocol.waiter, protocol.heard = waiter, False
        protocol.transport.write(raw)
        try:
            return await waiter
        finally:
            protocol.waiter = None

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None
