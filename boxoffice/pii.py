"""Personal data at rest: encryption with rotating keys, and keyed hashes for lookups.

Phone numbers, e-mail addresses, real names and contact details are stored encrypted with
libsodium's SecretBox (XSalsa20-Poly1305, via PyNaCl). Every ciphertext names the key that
sealed it::

    pii1:<key id>:<base64url(nonce || sealed box)>

so keys rotate: new writes use the current key, older keys keep decrypting what they sealed,
and ``boxoffice rotate-pii-key`` re-seals old rows with the current key. Encryption is
randomised (a fresh nonce each time), so a ciphertext cannot be searched for; lookups (sign
in by phone, a merchant's search by buyer phone) use a keyed hash instead — HMAC-SHA256 under
a separate key, so the hash column reveals nothing without that key and cannot be reversed by
trying every phone number.

The process's cipher is installed once at start-up (``install``, from configuration); the
column type ``boxoffice.models.base.EncryptedString`` and the hash helpers below use it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from nacl.exceptions import CryptoError
from nacl.secret import SecretBox

PREFIX = "pii1:"
KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class PiiKeyError(Exception):
    """No cipher installed, an unknown key id, or a ciphertext that does not open."""


@dataclass(frozen=True)
class PiiKeys:
    keys: Mapping[str, bytes]  # key id -> 32-byte SecretBox key
    current: str  # the id new writes use
    hash_key: bytes = field(repr=False)  # HMAC-SHA256 key of the lookup hashes

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise PiiKeyError(f"the current PII key {self.current!r} is not among the keys")
        for kid, key in self.keys.items():
            if not KEY_ID.match(kid):
                raise PiiKeyError(f"PII key id {kid!r}: 1-32 letters, digits, '-' or '_'")
            if len(key) != SecretBox.KEY_SIZE:
                raise PiiKeyError(f"PII key {kid!r} must be {SecretBox.KEY_SIZE} bytes")
        if len(self.hash_key) < 32:
            raise PiiKeyError("the PII hash key must be at least 32 bytes")

    def __repr__(self) -> str:
        return f"PiiKeys(keys={sorted(self.keys)}, current={self.current!r})"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def key_id_of(value: str) -> str | None:
    """The key id a stored value was sealed with (None: not a ciphertext)."""
    if not is_sealed(value):
        return None
    return value[len(PREFIX) :].split(":", 1)[0]


class PiiCipher:
    def __init__(self, keys: PiiKeys) -> None:
        self.keys = keys
        self._boxes = {kid: SecretBox(key) for kid, key in keys.keys.items()}

    @property
    def current(self) -> str:
        return self.keys.current

    def encrypt(self, plaintext: str) -> str:
        sealed = self._boxes[self.current].encrypt(plaintext.encode("utf-8"))
        return f"{PREFIX}{self.current}:{_b64(bytes(sealed))}"

    def decrypt(self, stored: str) -> str:
        """Open a ciphertext; a value that is not one (written before encryption) is
        returned as it is. Raises ``PiiKeyError`` for an unknown key or a forged value."""
        if not is_sealed(stored):
            return stored
        kid, _, body = stored[len(PREFIX) :].partition(":")
        box = self._boxes.get(kid)
        if box is None:
            raise PiiKeyError(f"no PII key {kid!r} is configured")
        try:
            return box.decrypt(_unb64(body)).decode("utf-8")
        except (CryptoError, ValueError) as exc:
            raise PiiKeyError(f"a value sealed with {kid!r} does not open") from exc

    def needs_resealing(self, stored: str | None) -> bool:
        """Plaintext, or sealed with a key other than the current one."""
        return stored is not None and key_id_of(stored) != self.current

    def lookup_hash(self, kind: str, value: str) -> str:
        """HMAC-SHA256 of ``kind`` and the normalised ``value``, hex (64 characters)."""
        message = f"{kind}\x00{value}".encode()
        return hmac.new(self.keys.hash_key, message, hashlib.sha256).hexdigest()


_installed: PiiCipher | None = None


def install(cipher: PiiCipher) -> None:
    """Make ``cipher`` the process's (the runtime and the CLI do this at start-up)."""
    global _installed
    _installed = cipher


def cipher() -> PiiCipher:
    if _installed is None:
        raise PiiKeyError("no PII cipher is installed (boxoffice.pii.install)")
    return _installed


def phone_hash(phone: str | None) -> str | None:
    """The lookup hash of a normalised phone number (``validation.phone``)."""
    return None if phone is None else cipher().lookup_hash("phone", phone)


def email_hash(email: str | None) -> str | None:
    """The lookup hash of a normalised (lower-case) e-mail address."""
    return None if email is None else cipher().lookup_hash("email", email)


def recipient_hash(recipient: str | None) -> str | None:
    """A phone number's or an e-mail address's lookup hash, whichever it is."""
    if recipient is None:
        return None
    return email_hash(recipient) if "@" in recipient else phone_hash(recipient)


def openid_hash(app_id: str, openid: str | None) -> str | None:
    """The lookup hash of a WeChat openid within its app."""
    return None if openid is None else cipher().lookup_hash("openid", f"{app_id}\x00{openid}")


def unionid_hash(unionid: str | None) -> str | None:
    return None if unionid is None else cipher().lookup_hash("unionid", unionid)


_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE = re.compile(
    r"(?<![0-9A-Za-z])(?:\+\d{7,15}|1[3-9]\d{9})(?![0-9A-Za-z])"  # E.164, or a CN mobile
)


def mask_contact(value: str) -> str:
    """``a***@example.com``, ``+86****8000``: enough to recognise, not to use."""
    if "@" in value:
        name, _, domain = value.partition("@")
        return f"{name[:1]}***@{domain}"
    return f"{value[:3]}****{value[-4:]}" if len(value) > 7 else "****"


def mask_name(name: str) -> str:
    """``王**``: the first character of a person's name."""
    return name[:1] + "*" * max(1, len(name) - 1)


def mask_text(text: str) -> str:
    """Every e-mail address and phone number in ``text``, masked."""
    masked = _EMAIL.sub(lambda m: mask_contact(m.group(0)), text)
    return _PHONE.sub(lambda m: mask_contact(m.group(0)), masked)
