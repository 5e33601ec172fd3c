from __future__ import annotations

import time

from boxoffice.backends.rate_limits import RateDecision


class MemoryRateLimiter:
    """In-process fixed windows; one process only."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[float, int]] = {}

    async def hit(self, key: str, *, limit: int, window_seconds: float) -> RateDecision:
        now = time.monotonic()
        if len(self._windows) > 50_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] > now}
        ends, count = self._windows.get(key, (0.0, 0))
        if ends <= now:
            ends, count = now + window_seconds, 0
        count += 1
        self._windows[key] = (ends, count)
        allowed = count <= limit
        return RateDecision(allowed, count, 0.0 if allowed else ends - now)

    async def reset(self, key: str) -> None:
        self._windows.pop(key, None)
