"""RSA-SHA256 with PKCS#1 v1.5 padding and base64 signatures: the scheme Alipay calls RSA2 and
WeChat Pay calls WECHATPAY2-SHA256-RSA2048. Keys come as PEM or as the bare base64 DER the
providers' consoles hand out."""

from __future__ import annotations

import base64
import binascii

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from boxoffice.errors import ConfigurationError


def _der(text: str, name: str) -> bytes:
    compact = "".join(text.split())
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{name} is neither PEM nor base64 DER") from exc


def load_private_key(text: str, *, name: str = "the private key") -> RSAPrivateKey:
    """An RSA private key from PEM (PKCS#8 or PKCS#1) or bare base64 DER.

    Raises ``ConfigurationError`` naming ``name`` when it is not one.
    """
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.strip().encode(), password=None)
        else:
            key = serialization.load_der_private_key(_der(text, name), password=None)
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not a readable RSA private key") from exc
    if not isinstance(key, RSAPrivateKey):
        raise ConfigurationError(f"{name} is not an RSA private key")
    return key


def load_public_key(text: str, *, name: str = "the public key") -> RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo, PKCS#1 or an X.509 certificate) or
    bare base64 DER.

    Raises ``ConfigurationError`` naming ``name`` when it is not one.
    """
    key: object
    try:
        if "-----BEGIN CERTIFICATE" in text:
            key = x509.load_pem_x509_certificate(text.strip().encode()).public_key()
        elif "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.strip().encode())
        else:
            key = serialization.load_der_public_key(_der(text, name))
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not a readable RSA public key") from exc
    if not isinstance(key, RSAPublicKey):
        raise ConfigurationError(f"{name} is not an RSA public key")
    return key


def sign(key: RSAPrivateKey, message: bytes) -> str:
    """The base64 RSA-SHA256 (PKCS#1 v1.5) signature of ``message``."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    """Whether ``signature`` (base64) is ``key``'s RSA-SHA256 signature of ``message``."""
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True
