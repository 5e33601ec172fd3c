"""Short-lived values port: verification codes, revocation markers, one-time nonces.

Every value has a time to live; nothing here is the source of truth for anything durable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol


class CodeStore(Protocol):
    async def put(self, key: str, value: str, *, ttl_seconds: float) -> None: ...

    async def put_if_absent(self, key: str, value: str, *, ttl_seconds: float) -> bool:
        """Store only when the key is free; True when this call stored it."""
        ...

    def put_if_absent_soon(self, key: str, value: str, *, ttl_seconds: float) -> Awaitable[bool]:
        """``put_if_absent`` sent before this returns (on Redis: written to the connection now)
        and answered when awaited, so that the caller's next round trip carries it too. The
        answer must be awaited."""
        ...

    async def get(self, key: str) -> str | None: ...

    async def get_many(self, keys: list[str]) -> list[str | None]: ...

    async def take(self, key: str) -> str | None:
        """Read and delete atomically: at most one caller gets the value."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, *, ttl_seconds: float) -> int:
        """Increment a counter; the first increment starts its time to live."""
        ...
