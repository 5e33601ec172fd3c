"""Sample keys and tickets for the signing and verifier tests (no database)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import nacl.signing

from boxoffice.services.ticket_signing import TicketKeyring, sign_ticket

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SESSION = "01JSESSION00000000000000AA"
EVENT = "01JEVENT0000000000000000AA"
SEED = bytes(range(32))
OTHER_SEED = bytes(range(100, 132))


def keyring(seed: bytes = SEED) -> TicketKeyring:
    return TicketKeyring.from_seed(seed)


def sign_sample(ring: TicketKeyring, **overrides: Any) -> str:
    """A ticket for SESSION, valid from an hour before NOW to five hours after it."""
    values: dict[str, Any] = {
        "sn": "T20250601000001",
        "event": EVENT,
        "session": SESSION,
        "seat": "A区 3排 12号",
        "not_before": NOW - timedelta(hours=1),
        "expires_at": NOW + timedelta(hours=5),
        "now": NOW - timedelta(days=3),
    }
    values.update(overrides)
    return sign_ticket(ring, **values)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def payload_fields(qr: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(b64url_decode(qr.split(".")[0]))
    return fields


def sign_raw(body: bytes, seed: bytes = SEED) -> str:
    """Sign arbitrary payload bytes with PyNaCl directly: for signed-but-malformed tickets."""
    signature = nacl.signing.SigningKey(seed).sign(body).signature
    return f"{b64url(body)}.{b64url(signature)}"


def with_fields(qr: str, **changes: Any) -> bytes:
    """The payload bytes of ``qr`` with some fields changed (compact, like the real ones)."""
    fields = payload_fields(qr)
    fields.update(changes)
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
