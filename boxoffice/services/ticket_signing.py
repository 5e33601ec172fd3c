"""Ticket signing keys, signed ticket payloads and the scanner bundle.

The wire format is defined (and read) by ``boxoffice.verifier``; this module writes it. A ticket's
``qrPayload`` is ``base64url(payload) + "." + base64url(Ed25519 signature over those payload
bytes)``, both unpadded; the payload is compact UTF-8 JSON with the fields, in this order,
``v kid sn event session seat iat nbf exp nonce``.

Key ids: ``kid`` is the first 8 bytes of SHA-256 of the raw 32-byte public key, base64url
without padding (11 characters), so anyone holding a public key can recompute its id.

Rotation: a ``TicketKeyring`` holds the current ``TicketKey`` (the only private key, from the
32-byte seed in ``settings.secrets.ticket_signing_seed``) and the PUBLIC halves of previous keys,
each with ``valid_until``: the end of the last session whose tickets it signed. A previous key
verifies tickets until then and is dropped from bundles and server checks after it. The previous
keys are plain ``PublicTicketKey`` values so a table can feed them; when the seed changes, record
the old key's ``public()`` with its ``valid_until`` before the new seed goes live.

The private key stays inside ``TicketKey``: only ``sign_ticket`` uses it, its ``repr`` shows the
``kid`` alone, and it refuses to be pickled or copied.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

import nacl.signing

from boxoffice.clock import as_utc, utcnow
from boxoffice.errors import SignatureInvalid
from boxoffice.verifier import (
    FORMAT_VERSION,
    MAX_PAYLOAD_CHARS,
    PUBLIC_KEY_BYTES,
    TicketClaims,
    Verdict,
    open_ticket,
    window_verdict,
)

SEED_BYTES = 32
KID_DIGEST_BYTES = 8
NONCE_BYTES = 8

_REASON_MESSAGES = {
    Verdict.MALFORMED: "The ticket payload is not a well-formed signed ticket.",
    Verdict.UNKNOWN_KEY: "The ticket was signed by a key that is unknown or retired.",
    Verdict.BAD_SIGNATURE: "The ticket's signature does not verify.",
    Verdict.NOT_YET_VALID: "The ticket is not valid yet.",
    Verdict.EXPIRED: "The ticket has expired.",
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(public_key: bytes) -> str:
    """The ``kid`` of a raw 32-byte Ed25519 public key (see the module docstring)."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return b64url(hashlib.sha256(public_key).digest()[:KID_DIGEST_BYTES])


@dataclass(frozen=True, slots=True)
class PublicTicketKey:
    """A verification key; ``valid_until`` is ``None`` for the current key."""

    kid: str
    public_key: bytes = field(repr=False)
    valid_until: datetime | None = None

    def __post_init__(self) -> None:
        if key_id(self.public_key) != self.kid:
            raise ValueError(f"kid {self.kid!r} does not match its public key")
        if self.valid_until is not None:
            object.__setattr__(self, "valid_until", as_utc(self.valid_until))

    def usable_at(self, now: datetime) -> bool:
        return self.valid_until is None or as_utc(now) < self.valid_until

    @property
    def key_base64(self) -> str:
        """Standard base64 of the raw public key, as the scanner bundle carries it."""
        return base64.b64encode(self.public_key).decode("ascii")


class TicketKey:
    """The current Ed25519 signing key. Holds the private key; never shows it."""

    __slots__ = ("_signing_key", "kid", "public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError("a ticket signing seed is 32 bytes")
        self._signing_key = nacl.signing.SigningKey(seed)
        self.public_key: bytes = bytes(self._signing_key.verify_key)
        self.kid: str = key_id(self.public_key)

    @classmethod
    def generate(cls) -> TicketKey:
        return cls(secrets.token_bytes(SEED_BYTES))

    def public(self, *, valid_until: datetime | None = None) -> PublicTicketKey:
        return PublicTicketKey(self.kid, self.public_key, valid_until)

    def __repr__(self) -> str:
        return f"TicketKey(kid={self.kid!r})"

    def __reduce__(self) -> NoReturn:
        raise TypeError("a TicketKey holds a private key and cannot be pickled or copied")


class TicketKeyring:
    """The current signing key plus previous public keys (rotation; see the module docstring).

    A previous key with the current key's ``kid`` is ignored, so a table that lists every key,
    the current one included, can feed ``previous`` as it is.
    """

    __slots__ = ("current", "previous")

    def __init__(self, current: TicketKey, previous: Iterable[PublicTicketKey] = ()) -> None:
        self.current = current
        latest: dict[str, PublicTicketKey] = {}
        for key in previous:
            if key.kid == current.kid:
                continue
            if key.valid_until is None:
                raise ValueError(f"previous key {key.kid!r} needs a valid_until")
            known = latest.get(key.kid)
            if known is None or (known.valid_until and key.valid_until > known.valid_until):
                latest[key.kid] = key
        self.previous: tuple[PublicTicketKey, ...] = tuple(latest.values())

    @classmethod
    def from_seed(cls, seed: bytes, previous: Iterable[PublicTicketKey] = ()) -> TicketKeyring:
        return cls(TicketKey(seed), previous)

    def public_keys(self, *, now: datetime) -> list[PublicTicketKey]:
        """The keys that verify tickets at ``now``: the current one first, then live previous."""
        return [self.current.public()] + [key for key in self.previous if key.usable_at(now)]

    def __repr__(self) -> str:
        return f"TicketKeyring(current={self.current!r}, previous={len(self.previous)})"


def _unix(value: datetime) -> int:
    return int(as_utc(value).timestamp())


def _required_text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def sign_ticket(
    keyring: TicketKeyring,
    *,
    sn: str,
    event: str,
    session: str,
    seat: str | None,
    not_before: datetime,
    expires_at: datetime,
    now: datetime | None = None,
) -> str:
    """The ``qrPayload`` of one ticket, signed with the keyring's current key.

    ``seat`` is the seat's label (``None`` for general admission); the ticket is valid in
    ``[not_before, expires_at)``. ``iat`` is ``now`` (default: the clock) and ``nonce`` is fresh
    randomness, so two signings of the same ticket differ. Raises ``ValueError`` on empty ids, a
    non-string seat, an empty window or a payload too long for a QR code (these come from the
    database, not from users).
    """
    issued = _unix(now or utcnow())
    nbf, exp = _unix(not_before), _unix(expires_at)
    if exp <= nbf:
        raise ValueError("expires_at must be after not_before")
    if seat is not None and not isinstance(seat, str):
        raise ValueError("seat must be a string or None")
    key = keyring.current
    fields: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "kid": key.kid,
        "sn": _required_text(sn, "sn"),
        "event": _required_text(event, "event"),
        "session": _required_text(session, "session"),
        "seat": seat,
        "iat": issued,
        "nbf": nbf,
        "exp": exp,
        "nonce": b64url(secrets.token_bytes(NONCE_BYTES)),
    }
    body = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    signature = key._signing_key.sign(body).signature
    qr = f"{b64url(body)}.{b64url(signature)}"
    if len(qr) > MAX_PAYLOAD_CHARS:
        raise ValueError(f"the signed ticket exceeds {MAX_PAYLOAD_CHARS} characters")
    return qr


def verify_ticket(
    qr: str, public_keys: Iterable[PublicTicketKey], *, now: datetime
) -> TicketClaims:
    """Verify a ``qrPayload`` on the server: format, key id, signature and validity window.

    ``public_keys`` is usually ``keyring.public_keys(now=now)``; keys past their
    ``valid_until`` are ignored either way. Session and revocation are the caller's to check.
    Raises ``SignatureInvalid`` whose ``reason`` is MALFORMED, UNKNOWN_KEY, BAD_SIGNATURE,
    NOT_YET_VALID or EXPIRED (the last two also carry ``ticketSn``: the signature verified).
    """
    keys = {key.kid: key.public_key for key in public_keys if key.usable_at(now)}
    verdict, claims = open_ticket(qr, keys)
    if claims is None:
        raise SignatureInvalid(_REASON_MESSAGES[verdict], reason=verdict.value)
    in_window = window_verdict(claims, as_utc(now).timestamp())
    if in_window is not Verdict.VALID:
        raise SignatureInvalid(
            _REASON_MESSAGES[in_window], reason=in_window.value, ticket_sn=claims.sn
        )
    return claims


@dataclass(frozen=True, slots=True)
class ScannerBundle:
    """What a gate needs to verify one session's tickets offline (API.md ``scannerBundle``)."""

    session_id: str
    public_keys: tuple[PublicTicketKey, ...]
    revoked: tuple[str, ...]
    version: int
    generated_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The bundle as the gate's verifier reads it (``boxoffice.verifier.Bundle.parse``)."""
        return {
            "sessionId": self.session_id,
            "publicKeys": [
                {
                    "kid": key.kid,
                    "key": key.key_base64,
                    "validUntil": key.valid_until.isoformat() if key.valid_until else None,
                }
                for key in self.public_keys
            ],
            "revoked": list(self.revoked),
            "version": self.version,
            "generatedAt": self.generated_at.isoformat(),
        }


def scanner_bundle(
    *,
    session_id: str,
    public_keys: Iterable[PublicTicketKey],
    revoked: Iterable[str],
    version: int,
    now: datetime | None = None,
) -> ScannerBundle:
    """Build a session's bundle: the keys usable at ``now``, the revoked serial numbers (sorted,
    unique) and the caller's revocation-list ``version`` (it must grow whenever ``revoked``
    changes, so gates can tell a fresher bundle)."""
    at = as_utc(now or utcnow())
    return ScannerBundle(
        session_id=session_id,
        public_keys=tuple(key for key in public_keys if key.usable_at(at)),
        revoked=tuple(sorted(set(revoked))),
        version=version,
        generated_at=at,
    )


__all__ = [
    "PublicTicketKey",
    "ScannerBundle",
    "TicketClaims",
    "TicketKey",
    "TicketKeyring",
    "key_id",
    "scanner_bundle",
    "sign_ticket",
    "verify_ticket",
]
