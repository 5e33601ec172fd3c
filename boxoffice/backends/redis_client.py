"""Redis client construction and reply decoding shared by the Redis adapters."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_CONNECTIONS = 100
POOL_TIMEOUT_SECONDS = 10.0


def connect(url: str, **kwargs: Any) -> Redis:
    """A client that retries a command on a dropped connection (e.g. after a Redis restart)
    instead of failing the first request that meets the dead pooled socket.

    Its pool holds at most ``MAX_CONNECTIONS`` sockets; past that, commands wait for a free
    one (redis-py's default pool would raise "Too many connections" instead, failing any
    burst of more than 100 concurrent requests)."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=kwargs.pop("max_connections", MAX_CONNECTIONS),
        timeout=POOL_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        socket_keepalive=True,
        **kwargs,
    )
    return Redis.from_pool(pool)


def text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value
