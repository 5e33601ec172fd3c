"""Identifiers: the ULID layout, character for character."""

from __future__ import annotations

import random
import time

from boxoffice import ids

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _reference(value: int) -> str:
    """The layout spelled out: 26 characters of 5 bits, most significant first."""
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def test_new_id_encodes_time_and_randomness_like_the_reference(monkeypatch) -> None:
    rng = random.Random(7)
    for _ in range(1000):
        millis, rest = rng.getrandbits(48), rng.getrandbits(80)
        monkeypatch.setattr(ids.time, "time_ns", lambda m=millis: m * 1_000_000)
        monkeypatch.setattr(ids.os, "urandom", lambda n, r=rest: r.to_bytes(n, "big"))
        assert ids.new_id() == _reference((millis << 80) | rest)
    monkeypatch.undo()
    first = ids.new_id()
    assert len(first) == 26 and set(first) <= set(_CROCKFORD)
    time.sleep(0.002)
    assert ids.new_id() > first  # sorts by creation time
