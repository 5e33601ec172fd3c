"""RSA keys in the forms the providers' consoles hand out, and RSA-SHA256 signatures."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from boxoffice.errors import ConfigurationError
from boxoffice.providers.payments import rsa_signatures


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_forms(key: rsa.RSAPrivateKey) -> list[str]:
    pkcs8_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pkcs1_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    pkcs8_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pkcs1_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return [
        pkcs8_pem,
        pkcs1_pem,
        base64.b64encode(pkcs8_der).decode(),
        base64.b64encode(pkcs1_der).decode(),
    ]


def certificate(key: rsa.RSAPrivateKey) -> str:
    """A platform certificate as WeChat Pay issued them (self-signed here)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def public_forms(key: rsa.RSAPrivateKey) -> list[str]:
    public = key.public_key()
    spki_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    pkcs1_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    ).decode()
    spki_der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    wrapped = base64.b64encode(spki_der).decode()
    wrapped = "\n".join(wrapped[i : i + 64] for i in range(0, len(wrapped), 64))
    return [spki_pem, pkcs1_pem, wrapped, certificate(key)]


def test_every_private_form_signs_what_every_public_form_verifies(key):
    for private_text in private_forms(key):
        signature = rsa_signatures.sign(rsa_signatures.load_private_key(private_text), b"message")
        for public_text in public_forms(key):
            public = rsa_signatures.load_public_key(public_text)
            assert rsa_signatures.verify(public, b"message", signature)
            assert not rsa_signatures.verify(public, b"messagE", signature)


def test_signatures_are_rsa_sha256_pkcs1v15(key):
    signature = rsa_signatures.sign(key, b"k=v")
    # the primitive itself accepts it, so any provider's check will
    key.public_key().verify(
        base64.b64decode(signature), b"k=v", padding.PKCS1v15(), hashes.SHA256()
    )


@pytest.mark.parametrize("signature", ["", "!!!", "AAAA", base64.b64encode(b"x" * 256).decode()])
def test_garbage_signatures_do_not_verify(key, signature):
    assert not rsa_signatures.verify(key.public_key(), b"k=v", signature)


def test_keys_of_another_kind_are_refused():
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ConfigurationError, match="APP KEY is not an RSA private key"):
        rsa_signatures.load_private_key(pem, name="APP KEY")
    with pytest.raises(ConfigurationError, match="neither PEM nor base64"):
        rsa_signatures.load_public_key("not a key")
