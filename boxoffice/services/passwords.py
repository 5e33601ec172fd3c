"""argon2id password hashing, run in a worker thread so the event loop never blocks on it."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher as _Argon2
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from boxoffice.errors import BadUserInput

MIN_LENGTH = 8
MAX_LENGTH = 128


class PasswordHasher:
    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65536, parallelism: int = 4):
        self._argon2 = _Argon2(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._argon2.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches. With no stored hash, a dummy hash is still checked
        so that unknown accounts take as long as known ones."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("boxoffice-timing-equaliser")
            stored_hash = self._dummy
            password = password + "\x00never"
        try:
            return await asyncio.to_thread(self._argon2.verify, stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._argon2.check_needs_rehash(stored_hash)


def check_password_policy(password: str, *, field: str = "password") -> None:
    if len(password) < MIN_LENGTH:
        raise BadUserInput(f"{field} must be at least {MIN_LENGTH} characters", field=field)
    if len(password) > MAX_LENGTH:
        raise BadUserInput(f"{field} must be at most {MAX_LENGTH} characters", field=field)
    if password.isdigit() or password.isalpha():
        raise BadUserInput(f"{field} must mix letters with digits or symbols", field=field)
