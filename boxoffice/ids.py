"""Opaque, time-ordered identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A 26-character ULID: sorts by creation time, unique without coordination."""
    value = ((time.time_ns() // 1_000_000) << 80) | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def random_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (refresh tokens, hold tokens, nonces)."""
    return secrets.token_urlsafe(nbytes)


def numeric_code(digits: int = 6) -> str:
    """A uniformly random decimal code such as an SMS verification code."""
    return str(secrets.randbelow(10**digits)).zfill(digits)
