"""Offline ticket verification for gate scanners: the standard library and PyNaCl, nothing else.

This module is meant to be copied into (or imported by) a gate app that works without a network.
It never imports another boxoffice module, opens no database and starts no server; a test keeps
it that way. boxoffice's own server-side checks reuse it, so both sides read tickets the same way.

The ticket format (API.md, "Tickets and check-in")::

    qrPayload = base64url(payload) + "." + base64url(signature)      # both unpadded
    signature = Ed25519(payload bytes)                                # 64 bytes
    payload   = compact UTF-8 JSON object, at least
                {"v": 1, "kid": str, "sn": str, "event": str, "session": str,
                 "seat": str | null, "iat": int, "nbf": int, "exp": int, "nonce": str}

``iat``/``nbf``/``exp`` are Unix seconds; a ticket is inside its window when
``nbf <= now < exp``. ``kid`` names the signing key: the first 8 bytes of SHA-256 of the raw
32-byte public key, base64url without padding (11 characters).

The bundle is what ``scannerBundle(sessionId)`` answers::

    {"publicKeys": [{"kid": "...", "key": "<standard base64 of the 32-byte public key>",
                     "validUntil": "<ISO-8601 or null, optional>"}],
     "revoked": ["<ticketSn>", ...], "version": 7, "generatedAt": "<ISO-8601>",
     "sessionId": "<optional>"}

Usage at a gate::

    import json, time
    from boxoffice.verifier import Bundle, Verdict, verify

    bundle = Bundle.parse(json.load(open("bundle.json")))   # refreshed whenever online
    result = verify(bundle, scanned_text, session="01J...", now=time.time())
    if result.verdict is Verdict.VALID:
        admit(result.claims.sn, result.claims.seat)
    else:
        refuse(result.verdict.value)   # REVOKED, WRONG_SESSION, EXPIRED, ...

Checks run in this order and the first failure is the verdict: MALFORMED (not two strict
base64url parts, not a JSON object, a missing or mistyped field), UNKNOWN_KEY (``kid`` not in the
bundle or past its ``validUntil``), BAD_SIGNATURE, WRONG_SESSION, REVOKED, NOT_YET_VALID, EXPIRED.
Claims are reported only once the signature verified: nothing in an unverified payload can be
trusted, not even its serial number.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nacl.exceptions
import nacl.signing

FORMAT_VERSION = 1
MAX_PAYLOAD_CHARS = 2048  # a version-40 QR code at level M holds 2331 bytes
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")


class Verdict(enum.StrEnum):
    VALID = "VALID"
    REVOKED = "REVOKED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    UNKNOWN_KEY = "UNKNOWN_KEY"
    WRONG_SESSION = "WRONG_SESSION"
    NOT_YET_VALID = "NOT_YET_VALID"
    EXPIRED = "EXPIRED"
    MALFORMED = "MALFORMED"


@dataclass(frozen=True, slots=True)
class TicketClaims:
    """The signed fields of a ticket; times are Unix seconds."""

    version: int
    kid: str
    sn: str
    event: str
    session: str
    seat: str | None
    issued_at: int
    not_before: int
    expires_at: int
    nonce: str


@dataclass(frozen=True, slots=True)
class Result:
    """A verdict, with the claims when the signature verified (``None`` otherwise)."""

    verdict: Verdict
    claims: TicketClaims | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VALID

    @property
    def sn(self) -> str | None:
        return self.claims.sn if self.claims is not None else None


@dataclass(frozen=True, slots=True)
class BundleKey:
    kid: str
    public_key: bytes
    valid_until: float | None = None

    def usable_at(self, now: float) -> bool:
        return self.valid_until is None or now < self.valid_until


@dataclass(frozen=True, slots=True)
class Bundle:
    """A parsed scanner bundle: public keys by ``kid``, revoked serial numbers, its version."""

    keys: Mapping[str, BundleKey]
    revoked: frozenset[str]
    version: int
    generated_at: str
    session_id: str | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any] | str | bytes) -> Bundle:
        """Read the ``scannerBundle`` object (a dict or its JSON text); ``ValueError`` if broken."""
        raw: Any = json.loads(data) if isinstance(data, str | bytes) else data
        if not isinstance(raw, Mapping):
            raise ValueError("a scanner bundle is a JSON object")
        keys: dict[str, BundleKey] = {}
        for entry in _field(raw, "publicKeys", list):
            if not isinstance(entry, Mapping):
                raise ValueError("publicKeys entries are objects")
            kid = _field(entry, "kid", str)
            try:
                public_key = base64.b64decode(_field(entry, "key", str), validate=True)
            except binascii.Error as exc:
                raise ValueError(f"key {kid!r} is not standard base64") from exc
            if len(public_key) != PUBLIC_KEY_BYTES:
                raise ValueError(f"key {kid!r} is not a raw 32-byte Ed25519 public key")
            until = entry.get("validUntil")
            keys[kid] = BundleKey(
                kid, public_key, None if until is None else _timestamp(_iso(until))
            )
        revoked = _field(raw, "revoked", list)
        if not all(isinstance(sn, str) for sn in revoked):
            raise ValueError("revoked holds ticket serial numbers (strings)")
        version = _field(raw, "version", int)
        session_id = raw.get("sessionId")
        return cls(
            keys=keys,
            revoked=frozenset(revoked),
            version=version,
            generated_at=_field(raw, "generatedAt", str),
            session_id=str(session_id) if session_id is not None else None,
        )


def verify(
    bundle: Bundle,
    payload: str,
    *,
    session: str,
    now: datetime | float,
    leeway_seconds: int = 0,
) -> Result:
    """Judge a scanned ``payload`` at the gate of ``session`` at ``now``.

    ``now`` is an aware datetime (naive ones are taken as UTC) or Unix seconds;
    ``leeway_seconds`` widens the validity window for gate clocks that drift. Never raises for a
    bad payload: every failure is a verdict.
    """
    at = _timestamp(now)
    keys = {kid: key.public_key for kid, key in bundle.keys.items() if key.usable_at(at)}
    verdict, claims = open_ticket(payload, keys)
    if claims is None:
        return Result(verdict)
    if claims.session != session:
        return Result(Verdict.WRONG_SESSION, claims)
    if claims.sn in bundle.revoked:
        return Result(Verdict.REVOKED, claims)
    return Result(window_verdict(claims, at, leeway_seconds=leeway_seconds), claims)


def open_ticket(
    payload: str, public_keys: Mapping[str, bytes]
) -> tuple[Verdict, TicketClaims | None]:
    """Check format, key id and signature against ``public_keys`` (kid → raw 32-byte key).

    Answers ``(VALID, claims)`` when the signature verifies (the window, session and revocation
    are not looked at), else ``(MALFORMED | UNKNOWN_KEY | BAD_SIGNATURE, None)``.
    """
    parts = _split(payload)
    if parts is None:
        return Verdict.MALFORMED, None
    body, signature = parts
    fields = _json_object(body)
    if fields is None or not isinstance(fields.get("kid"), str):
        return Verdict.MALFORMED, None
    public_key = public_keys.get(fields["kid"])
    if public_key is None:
        return Verdict.UNKNOWN_KEY, None
    try:
        nacl.signing.VerifyKey(public_key).verify(body, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
        return Verdict.BAD_SIGNATURE, None
    claims = _claims(fields)
    if claims is None:
        return Verdict.MALFORMED, None
    return Verdict.VALID, claims


def window_verdict(claims: TicketClaims, now: float, *, leeway_seconds: int = 0) -> Verdict:
    """VALID inside ``nbf <= now < exp`` (widened by the leeway), else NOT_YET_VALID/EXPIRED."""
    if now + leeway_seconds < claims.not_before:
        return Verdict.NOT_YET_VALID
    if now - leeway_seconds >= claims.expires_at:
        return Verdict.EXPIRED
    return Verdict.VALID


def b64url_decode(text: str) -> bytes | None:
    """Strict unpadded base64url: the alphabet only, canonical trailing bits; ``None`` if not."""
    if not _B64URL.match(text) or len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != text:
        return None
    return data


def _split(payload: str) -> tuple[bytes, bytes] | None:
    if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS:
        return None
    parts = payload.strip().split(".")
    if len(parts) != 2:
        return None
    body, signature = (b64url_decode(part) for part in parts)
    if body is None or signature is None or len(signature) != SIGNATURE_BYTES:
        return None
    return body, signature


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise ValueError("duplicate keys")
    return fields


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(
            body.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_constant=_reject_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _claims(fields: dict[str, Any]) -> TicketClaims | None:
    strings = ("kid", "sn", "event", "session", "nonce")
    times = ("iat", "nbf", "exp")
    if fields.get("v") != FORMAT_VERSION or not _is_int(fields.get("v")):
        return None
    if not all(isinstance(fields.get(name), str) and fields[name] for name in strings):
        return None
    if not all(_is_int(fields.get(name)) for name in times):
        return None
    if "seat" not in fields or not (fields["seat"] is None or isinstance(fields["seat"], str)):
        return None
    return TicketClaims(
        version=fields["v"],
        kid=fields["kid"],
        sn=fields["sn"],
        event=fields["event"],
        session=fields["session"],
        seat=fields["seat"],
        issued_at=fields["iat"],
        not_before=fields["nbf"],
        expires_at=fields["exp"],
        nonce=fields["nonce"],
    )


def _field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{name} must be a {kind.__name__}")
    return value


def _iso(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("times are ISO-8601 strings")
    return datetime.fromisoformat(value)


def _timestamp(value: datetime | float) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


__all__ = [
    "Bundle",
    "BundleKey",
    "Result",
    "TicketClaims",
    "Verdict",
    "b64url_decode",
    "open_ticket",
    "verify",
    "window_verdict",
]
