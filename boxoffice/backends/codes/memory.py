from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable


class MemoryCodeStore:
    """In-process short-lived values; one process only."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[str, float]] = {}

    def _live(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            del self._values[key]
            return None
        return entry[0]

    def _prune(self) -> None:
        if len(self._values) > 100_000:
            now = time.monotonic()
            self._values = {k: v for k, v in self._values.items() if v[1] > now}

    async def put(self, key: str, value: str, *, ttl_seconds: float) -> None:
        self._store(key, value, ttl_seconds)

    def _store(self, key: str, value: str, ttl_seconds: float) -> None:
        self._prune()
        self._values[key] = (value, time.monotonic() + ttl_seconds)

    async def put_if_absent(self, key: str, value: str, *, ttl_seconds: float) -> bool:
        return self._put_if_absent(key, value, ttl_seconds)

    def put_if_absent_soon(self, key: str, value: str, *, ttl_seconds: float) -> Awaitable[bool]:
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        answer.set_result(self._put_if_absent(key, value, ttl_seconds))
        return answer

    def _put_if_absent(self, key: str, value: str, ttl_seconds: float) -> bool:
        if self._live(key) is not None:
            return False
        self._store(key, value, ttl_seconds)
        return True

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def take(self, key: str) -> str | None:
        value = self._live(key)
        self._values.pop(key, None)
        return value

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        entry = self._values.get(key)
        if entry is None or entry[1] <= time.monotonic():
            self._values[key] = ("1", time.monotonic() + ttl_seconds)
            return 1
        value = int(entry[0]) + 1
        self._values[key] = (str(value), entry[1])
        return value
