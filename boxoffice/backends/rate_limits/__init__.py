"""Rate limiting port: fixed-window counters keyed by whatever is limited (a phone, an IP,
a user and an operation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after: float  # seconds until the window resets (0 when allowed)


class RateLimiter(Protocol):
    async def hit(self, key: str, *, limit: int, window_seconds: float) -> RateDecision:
        """Count one event under ``key``; allowed while the window holds at most ``limit``."""
        ...

    async def reset(self, key: str) -> None: ...
