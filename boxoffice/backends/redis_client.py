"""Redis client construction and reply decoding shared by the Redis adapters."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def connect(url: str, *, max_connections: int = 64, **kwargs: Any) -> Redis:
    """A client whose pool waits for a free connection under load (instead of failing with
    "Too many connections") and that retries a command on a dropped connection (e.g. after a
    Redis restart) instead of failing the first request that meets the dead pooled socket."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        socket_keepalive=True,
        **kwargs,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


def text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value
