"""Opaque, time-ordered identifiers (ULID layout: 48-bit milliseconds + 80 random bits)."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# two characters per 10 bits: 13 lookups instead of 26 shifts (an id per request and per hold)
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


def new_id() -> str:
    """A 26-character ULID: sorts by creation time, unique without coordination."""
    value = ((time.time_ns() // 1_000_000) << 80) | int.from_bytes(os.urandom(10), "big")
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def random_token(nbytes: int = 32) -> str:
    """An unguessable URL-safe token (refresh tokens, hold tokens, nonces)."""
    return secrets.token_urlsafe(nbytes)


def numeric_code(digits: int = 6) -> str:
    """A uniformly random decimal code such as an SMS verification code."""
    return str(secrets.randbelow(10**digits)).zfill(digits)
