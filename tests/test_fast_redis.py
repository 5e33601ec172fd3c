"""The hot-path Redis client (``backends/fast_redis.py``) against a real redis-server: replies in
order under concurrency, errors, scripts that load themselves, a restart, a stalled server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from boxoffice.backends.fast_redis import FastRedis
from tests.services import RedisServer

# keeps the server busy for ARGV[1] microseconds (DEBUG SLEEP is refused on a default server)
BUSY = """
local t = redis.call('TIME'); local start = t[1] * 1000000 + t[2]
while true do
  t = redis.call('TIME')
  if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then return 1 end
end
"""


def busy(fast: FastRedis, seconds: float) -> asyncio.Task[object]:
    return asyncio.create_task(fast.execute_command("EVAL", BUSY, 0, int(seconds * 1e6)))


@pytest.fixture
async def server() -> AsyncIterator[RedisServer]:
    """A redis-server of this test alone (some tests kill or stall it)."""
    own = RedisServer()
    own.url = ""  # never the shared one named by BOXOFFICE_TEST_REDIS_URL
    await own.start()
    yield own
    own.stop()


@pytest.fixture
async def fast(server: RedisServer) -> AsyncIterator[FastRedis]:
    client = FastRedis(server.url, timeout=1.0)
    yield client
    await client.aclose()


async def test_concurrent_callers_get_their_own_replies(fast: FastRedis):
    async def one(i: int) -> tuple[int, bytes | None]:
        await fast.execute_command("SET", f"k{i}", f"v{i}")
        count = await fast.execute_command("INCRBY", "counter", i)
        return count, await fast.execute_command("GET", f"k{i}")

    results = await asyncio.gather(*(one(i) for i in range(500)))
    assert [value for _count, value in results] == [f"v{i}".encode() for i in range(500)]
    assert await fast.execute_command("GET", "counter") == str(sum(range(500))).encode()
    assert await fast.mget(["k1", "missing", "k2"]) == [b"v1", None, b"v2"]


async def test_an_error_reply_raises_and_the_connection_goes_on(fast: FastRedis):
    await fast.execute_command("SET", "text", "abc")
    with pytest.raises(ResponseError):
        await fast.execute_command("INCR", "text")
    assert await fast.execute_command("PING") == b"PONG"


async def test_a_cancelled_caller_does_not_shift_the_replies(fast: FastRedis):
    await fast.execute_command("SET", "a", "1")
    slow = busy(fast, 0.2)
    await asyncio.sleep(0.05)
    slow.cancel()
    assert await fast.execute_command("GET", "a") == b"1"


async def test_scripts_load_themselves_again_after_a_flush(fast: FastRedis, server: RedisServer):
    script = fast.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await script(keys=["n"], args=[2]) == 2
    plain = Redis.from_url(server.url)
    try:
        await plain.script_flush()
    finally:
        await plain.aclose()
    assert await script(keys=["n"], args=[3]) == 5


async def test_the_url_selects_the_database(server: RedisServer):
    client = FastRedis(server.url.rsplit("/", 1)[0] + "/3")
    try:
        await client.execute_command("SET", "where", "db3")
        plain = Redis.from_url(server.url.rsplit("/", 1)[0] + "/3")
        try:
            assert await plain.get("where") == b"db3"
        finally:
            await plain.aclose()
    finally:
        await client.aclose()


async def test_a_restart_fails_what_was_waiting_and_the_next_call_reconnects(
    fast: FastRedis, server: RedisServer
):
    assert await fast.execute_command("PING") == b"PONG"
    waiting = busy(fast, 0.5)
    await asyncio.sleep(0.1)
    await server.restart()
    with pytest.raises(RedisConnectionError):
        await waiting  # never sent again: the caller learns the command's fate is unknown
    assert await fast.execute_command("PING") == b"PONG"


async def test_a_stalled_server_times_out_and_the_client_recovers(
    fast: FastRedis, server: RedisServer
):
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(fast.execute_command("PING"), 5)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
    assert await fast.execute_command("PING") == b"PONG"


async def test_a_server_that_is_down_answers_connection_errors(server: RedisServer):
    client = FastRedis(server.url)
    server.stop()
    try:
        with pytest.raises(RedisConnectionError):
            await client.execute_command("PING")
    finally:
        await client.aclose()


def test_it_runs_on_uvloop_as_the_server_does(redis_server: RedisServer):
    import uvloop

    async def round_trip() -> list[object]:
        client = FastRedis(redis_server.url)
        try:
            script = client.register_script("return ARGV[1]")
            return list(await asyncio.gather(client.execute_command("PING"), script(args=["x"])))
        finally:
            await client.aclose()

    assert uvloop.run(round_trip()) == [b"PONG", b"x"]
