from __future__ import annotations

import time


class MemoryLeases:
    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}

    async def acquire(self, name: str, owner: str, *, ttl_seconds: float) -> bool:
        now = time.monotonic()
        current = self._held.get(name)
        if current is not None and current[1] > now and current[0] != owner:
            return False
        self._held[name] = (owner, now + ttl_seconds)
        return True

    async def release(self, name: str, owner: str) -> None:
        current = self._held.get(name)
        if current is not None and current[0] == owner:
            del self._held[name]

    async def holder(self, name: str) -> str | None:
        current = self._held.get(name)
        if current is None or current[1] <= time.monotonic():
            return None
        return current[0]
