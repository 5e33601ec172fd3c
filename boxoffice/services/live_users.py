"""Whether the user an access token names still has an account.

A token outlives nothing it was issued for except the user row itself: a user removed from
the database would otherwise keep acting (and fail deep inside a service) until the token
expires. Each process remembers the users it saw exist for ``ttl_seconds``, so a signed-in
client costs one primary-key read per user per window; unknown users are never remembered.
Code that removes or anonymises an account should also revoke its tokens
(``revocation.revoke_user``), which stops them at once on every process.
"""

from __future__ import annotations

import time

from sqlmodel import col, select

from boxoffice.db import Database
from boxoffice.errors import Unauthenticated
from boxoffice.models.identity import User

TTL_SECONDS = 30.0
MAX_REMEMBERED = 100_000


class LiveUsers:
    def __init__(self, ttl_seconds: float = TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._seen: dict[str, float] = {}

    def knows(self, user_id: str) -> bool:
        """Whether ``require`` would answer from memory now (the user was seen lately)."""
        seen = self._seen.get(user_id)
        return seen is not None and time.monotonic() - seen < self.ttl_seconds

    async def require(self, db: Database, user_id: str) -> None:
        """Raise ``Unauthenticated`` (reason USER_UNKNOWN) unless ``user_id`` has an account."""
        now = time.monotonic()
        seen = self._seen.get(user_id)
        if seen is not None and now - seen < self.ttl_seconds:
            return
        async with db.read() as session:
            found = (await session.exec(select(col(User.id)).where(User.id == user_id))).first()
        if found is None:
            self._seen.pop(user_id, None)
            raise Unauthenticated("The access token is not valid.", reason="USER_UNKNOWN")
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen = {u: t for u, t in self._seen.items() if now - t < self.ttl_seconds}
        self._seen[user_id] = now

    def forget(self, user_id: str) -> None:
        self._seen.pop(user_id, None)
