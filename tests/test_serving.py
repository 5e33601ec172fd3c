"""The serving loop accepts a burst of connections in one turn of the event loop (libuv
accepts one per turn, so at an on-sale a busy server let a tick's holds in one by one)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from boxoffice import serving


class Turns:
    """Counts turns of the event loop (a callback that schedules itself for the next one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.count = 0
        self.loop.call_soon(self.tick)

    def tick(self) -> None:
        self.count += 1
        self.loop.call_soon(self.tick)


async def accepted_turns(create: Callable[..., object], burst: int, **where: object) -> list[int]:
    """Open ``burst`` connections while the loop is blocked (the kernel queues them), then
    the turn in which each reached its protocol."""
    loop = asyncio.get_running_loop()
    turns = Turns(loop)
    made: list[int] = []

    class Counting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            made.append(turns.count)
            transport.close()

    server = await create(Counting, **where)  # type: ignore[operator]
    port = server.sockets[0].getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(burst)]
    try:
        for _ in range(10_000):
            if len(made) == burst:
                break
            await asyncio.sleep(0)
        assert len(made) == burst
    finally:
        for client in clients:
            client.close()
        server.close()
        await server.wait_closed()
    return made


def run(coroutine_of: Callable[[asyncio.AbstractEventLoop], object]) -> object:
    loop = serving.new_event_loop()
    try:
        return loop.run_until_complete(coroutine_of(loop))  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.mark.parametrize("bound", ["host and port", "a socket"])
def test_a_burst_of_connections_is_accepted_in_one_turn(bound: str):
    def scenario(loop: asyncio.AbstractEventLoop) -> object:
        if bound == "a socket":  # how uvicorn's workers get theirs
            listener = socket.create_server(("127.0.0.1", 0))
            return accepted_turns(loop.create_server, 20, sock=listener)
        return accepted_turns(loop.create_server, 20, host="127.0.0.1", port=0)

    made = run(scenario)
    assert isinstance(made, list)
    assert max(made) - min(made) <= 1  # uvloop's own server: one per turn, 19 turns apart


def test_a_closed_server_refuses_new_connections():
    async def scenario(loop: asyncio.AbstractEventLoop) -> bool:
        server = await loop.create_server(asyncio.Protocol, host="127.0.0.1", port=0)
        port = server.sockets[0].getsockname()[1]
        assert server.is_serving()
        server.close()
        await server.wait_closed()
        assert not server.is_serving()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        return False

    assert run(scenario) is True
