"""A minimal WebSocket client for load generators: thousands of sockets in one process at a
few microseconds of CPU per received message.

The ``websockets`` client spends ~300 µs of CPU per message in a process holding 5,000
sockets (its reader task, assembler and futures per message): on a 2-core machine the
benchmark's clients then took as much CPU as the server they measured. Here one asyncio
``Protocol`` per socket parses frames in ``data_received`` and hands each whole text message
to a callback together with its arrival time, with no task switch.

Loopback benchmarks only: no TLS, no extensions (no compression), the handshake's
``Sec-WebSocket-Accept`` is not checked. Answers pings, answers a close and closes.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

OnMessage = Callable[[bytes, float], None]


def frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One final, masked client frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    mask = os.urandom(4)
    repeated = (mask * (length // 4 + 1))[:length]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        length, "big"
    )
    return header + mask + masked


class LiteSocket(asyncio.Protocol):
    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._fragments = bytearray()
        self._handshaken = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed during the handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        arrived = time.time()
        self._buffer += data
        if not self._handshaken:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode()))
                self.abort()
                return
            self._handshaken = True
            self.opened.set_result(None)
        self._frames(arrived)

    def _frames(self, arrived: float) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = struct.unpack_from("!Q", buffer, 2)[0], 10
            if second & 0x80:  # a masked server frame is a protocol error; skip its key
                offset += 4
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            if opcode in (0x0, 0x1, 0x2):
                self._fragments += payload
                if first & 0x80:
                    message = bytes(self._fragments)
                    self._fragments.clear()
                    self.on_message(message, arrived)
            elif opcode == 0x8:  # close: answer it and go
                self.send(payload[:2], opcode=0x8)
                self.abort()
                return
            elif opcode == 0x9:
                self.send(payload, opcode=0xA)

    def send(self, payload: bytes, opcode: int = 0x1) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame(payload, opcode))

    def close(self) -> None:
        """Send a normal close and drop the connection (no wait for the server's answer)."""
        self.send(struct.pack("!H", 1000), opcode=0x8)
        self.abort()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(
    host: str,
    port: int,
    path: str,
    on_message: OnMessage,
    *,
    subprotocol: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> LiteSocket:
    """Open a socket (after the 101 answer) whose messages go to ``on_message``."""
    loop = asyncio.get_running_loop()
    _transport, socket = await loop.create_connection(lambda: LiteSocket(on_message), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    assert socket.transport is not None
    socket.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        await asyncio.wait_for(asyncio.shield(socket.opened), timeout)
    except BaseException:
        socket.abort()
        raise
    return socket
