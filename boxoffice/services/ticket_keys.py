"""The process's ticket keyring: the current signing key and the public keys it replaced.

The current key comes from ``settings.secrets.ticket_signing_seed`` and is the only private
key. Every key that signed a ticket has a ``ticket_keys`` row whose ``valid_until`` is the
latest ``exp`` of the tickets it signed (raised in the issuing transaction). After a rotation
(a new seed), the rows of earlier keys become the keyring's ``previous`` keys, so their
tickets keep verifying until their sessions are over, with no manual step.

Previous keys are read from the table at most every ``REFRESH_SECONDS`` (a key that is not
known yet, e.g. one another process started signing with during a rolling deploy, forces a
re-read: ``keyring(refresh=True)``).
"""

from __future__ import annotations

import asyncio
import base64
import time
from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import as_utc
from boxoffice.db import Database
from boxoffice.models.tickets import TicketKeyRecord
from boxoffice.services.ticket_signing import PublicTicketKey, TicketKey, TicketKeyring

REFRESH_SECONDS = 60.0
MIN_REFRESH_SECONDS = 1.0


class TicketKeys:
    """Holds the current ``TicketKey`` (never shown, never logged) and caches the keyring."""

    def __init__(self, db: Database, seed: bytes) -> None:
        self._db = db
        self._current = TicketKey(seed)
        self._ring: TicketKeyring | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def kid(self) -> str:
        return self._current.kid

    def signing_ring(self) -> TicketKeyring:
        """A keyring of the current key alone: what ``sign_ticket`` needs (no database)."""
        return TicketKeyring(self._current)

    async def keyring(self, *, refresh: bool = False) -> TicketKeyring:
        """The current key plus every earlier key that signed tickets. ``refresh`` re-reads
        the table unless it was read less than ``MIN_REFRESH_SECONDS`` ago (so a flood of
        unknown keys cannot hammer the database)."""
        ring = self._ring
        if ring is not None and not refresh and self._age() < REFRESH_SECONDS:
            return ring
        async with self._lock:
            ring = self._ring
            if ring is not None and self._age() < (
                MIN_REFRESH_SECONDS if refresh else REFRESH_SECONDS
            ):
                return ring
            async with self._db.read() as session:
                rows = (await session.exec(select(TicketKeyRecord))).all()
            previous = [
                PublicTicketKey(row.kid, base64.b64decode(row.public_key), row.valid_until)
                for row in rows
                if row.kid != self._current.kid and row.valid_until is not None
            ]
            ring = self._ring = TicketKeyring(self._current, previous)
            self._loaded_at = time.monotonic()
        return ring

    def _age(self) -> float:
        return time.monotonic() - self._loaded_at

    async def note_signed(self, session: AsyncSession, *, until: datetime) -> None:
        """Record, inside the signing transaction, that the current key signed tickets valid
        until ``until`` (its row is created the first time). Once the row covers ``until``
        the update matches nothing and locks nothing."""
        until = as_utc(until)
        row = {
            "kid": self._current.kid,
            "public_key": base64.b64encode(self._current.public_key).decode("ascii"),
            "valid_until": until,
        }
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await session.exec(
            insert(TicketKeyRecord).values(**row).on_conflict_do_nothing(index_elements=["kid"])
        )
        await session.exec(
            update(TicketKeyRecord)
            .where(
                col(TicketKeyRecord.kid) == self._current.kid,
                or_(
                    col(TicketKeyRecord.valid_until).is_(None),
                    col(TicketKeyRecord.valid_until) < until,
                ),
            )
            .values(valid_until=until)
        )

    def __repr__(self) -> str:
        return f"TicketKeys(kid={self._current.kid!r})"
