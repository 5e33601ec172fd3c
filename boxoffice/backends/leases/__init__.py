"""Leases port: at most one holder of a named lease at a time (background jobs such as
sweepers and the queue ticker run only while their process holds the lease)."""

from __future__ import annotations

from typing import Protocol


class Leases(Protocol):
    async def acquire(self, name: str, owner: str, *, ttl_seconds: float) -> bool:
        """Take the lease if free (or already ours, renewing it)."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give the lease up if we still hold it."""
        ...

    async def holder(self, name: str) -> str | None: ...
