from __future__ import annotations

import time


class MemorySlots:
    """In-process slots; one process only."""

    def __init__(self) -> None:
        self._held: dict[str, dict[str, float]] = {}

    def _live(self, key: str) -> dict[str, float]:
        now = time.monotonic()
        held = {h: until for h, until in self._held.get(key, {}).items() if until > now}
        if held:
            self._held[key] = held
        else:
            self._held.pop(key, None)
        return held

    async def acquire(self, key: str, holder: str, *, limit: int, lease_seconds: float) -> bool:
        held = self._live(key)
        if holder not in held and len(held) >= limit:
            return False
        self._held.setdefault(key, {})[holder] = time.monotonic() + lease_seconds
        return True

    async def renew(self, key: str, holders: list[str], *, lease_seconds: float) -> None:
        held = self._live(key)
        until = time.monotonic() + lease_seconds
        for holder in holders:
            if holder in held:
                held[holder] = until

    async def release(self, key: str, holder: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.pop(holder, None)
            if not held:
                self._held.pop(key, None)

    async def count(self, key: str) -> int:
        return len(self._live(key))
