"""Whether the user an access token names still has an account.

A token outlives nothing it was issued for except the user row itself: a user removed from
the database would otherwise keep acting (and fail deep inside a service) until the token
expires. Each process remembers the users it saw exist. Within ``ttl_seconds`` of the last
check that is the answer; after it, and up to ``stale_seconds``, the request still passes
and the user is checked again in the background (once per user at a time), so a user removed
from the database is refused from the check's end — at most ``ttl_seconds`` plus the requests
that arrived while it ran. Beyond ``stale_seconds`` (or never seen) the request waits for a
primary-key read. Unknown users are never remembered.

Why not wait on every expired entry: at an on-sale the buyers waited in the line for minutes,
so every first request after admission (the hold, where every millisecond counts) read the
database while the orders of the buyers ahead held the connections.

Code that removes or anonymises an account should also revoke its tokens
(``revocation.revoke_user``), which stops them at once on every process; this is the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlmodel import col, select

from boxoffice.db import Database
from boxoffice.errors import Unauthenticated
from boxoffice.models.identity import User

log = logging.getLogger("boxoffice.auth")

TTL_SECONDS = 30.0
STALE_SECONDS = 3600.0  # an access token lives at most an hour (ACCESS_TOKEN_TTL_SECONDS)
MAX_REMEMBERED = 100_000


class LiveUsers:
    def __init__(
        self, ttl_seconds: float = TTL_SECONDS, stale_seconds: float = STALE_SECONDS
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.stale_seconds = max(stale_seconds, ttl_seconds)
        self._seen: dict[str, float] = {}
        self._checking: dict[str, asyncio.Task[None]] = {}

    def knows(self, user_id: str) -> bool:
        """Whether ``require`` would answer from memory now (the user was seen lately)."""
        seen = self._seen.get(user_id)
        return seen is not None and time.monotonic() - seen < self.stale_seconds

    async def require(self, db: Database, user_id: str) -> None:
        """Raise ``Unauthenticated`` (reason USER_UNKNOWN) unless ``user_id`` has an account."""
        now = time.monotonic()
        seen = self._seen.get(user_id)
        if seen is not None and now - seen < self.stale_seconds:
            if now - seen >= self.ttl_seconds and user_id not in self._checking:
                task = asyncio.create_task(self._recheck(db, user_id))
                self._checking[user_id] = task
                task.add_done_callback(lambda _: self._checking.pop(user_id, None))
            return
        if not await self._exists(db, user_id):
            raise Unauthenticated("The access token is not valid.", reason="USER_UNKNOWN")

    async def settled(self) -> None:
        """Wait for the background checks under way (tests, shutdown)."""
        while self._checking:
            await asyncio.gather(*self._checking.values(), return_exceptions=True)

    async def _recheck(self, db: Database, user_id: str) -> None:
        try:
            await self._exists(db, user_id)
        except Exception:  # unchecked: the next request waits for the read instead
            self._seen.pop(user_id, None)
            log.warning("could not check that a user still exists", exc_info=True)

    async def _exists(self, db: Database, user_id: str) -> bool:
        async with db.read() as session:
            found = (await session.exec(select(col(User.id)).where(User.id == user_id))).first()
        now = time.monotonic()
        if found is None:
            self._seen.pop(user_id, None)
            return False
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen = {u: t for u, t in self._seen.items() if now - t < self.stale_seconds}
        self._seen[user_id] = now
        return True

    def forget(self, user_id: str) -> None:
        self._seen.pop(user_id, None)
