"""Slots port: at most ``limit`` holders of one key at a time, each on a renewable lease
(one user's subscriptions in flight across all their connections and processes).

A holder that disappears without releasing (a killed process) frees its slot when its lease
runs out; a live holder renews its leases well before then.
"""

from __future__ import annotations

from typing import Protocol


class Slots(Protocol):
    async def acquire(self, key: str, holder: str, *, limit: int, lease_seconds: float) -> bool:
        """Take a slot of ``key`` for ``holder`` unless ``limit`` live holders have one."""
        ...

    async def renew(self, key: str, holders: list[str], *, lease_seconds: float) -> None:
        """Extend the leases of ``holders`` that still hold a slot of ``key``."""
        ...

    async def release(self, key: str, holder: str) -> None: ...

    async def count(self, key: str) -> int:
        """Live holders of ``key``."""
        ...
