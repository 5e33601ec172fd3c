"""Ticket signing: the qrPayload format, server-side verification, rotation, the scanner bundle
and keeping the private key private."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import pickle
import re
from datetime import datetime, timedelta

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from boxoffice.errors import SignatureInvalid
from boxoffice.services.ticket_signing import (
    PublicTicketKey,
    TicketKey,
    TicketKeyring,
    key_id,
    scanner_bundle,
    verify_ticket,
)
from boxoffice.verifier import Bundle, Verdict, verify
from tests.signed_tickets import (
    NOW,
    OTHER_SEED,
    SEED,
    SESSION,
    b64url,
    b64url_decode,
    keyring,
    payload_fields,
    sign_raw,
    sign_sample,
    with_fields,
)

UNPADDED_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
FIELD_ORDER = ["v", "kid", "sn", "event", "session", "seat", "iat", "nbf", "exp", "nonce"]


def reason_of(qr: str, ring: TicketKeyring, *, at: datetime = NOW) -> str | None:
    with pytest.raises(SignatureInvalid) as refused:
        verify_ticket(qr, ring.public_keys(now=NOW), now=at)
    assert refused.value.code == "SIGNATURE_INVALID" and refused.value.status == 6001
    return refused.value.reason


def test_a_ticket_verifies_with_only_the_bundles_public_key_through_pynacl():
    # given a signed ticket and the bundle a gate downloads
    ring = keyring()
    qr = sign_sample(ring)
    bundle = scanner_bundle(
        session_id=SESSION, public_keys=ring.public_keys(now=NOW), revoked=[], version=1, now=NOW
    ).as_json()
    # when a third party verifies it with PyNaCl alone
    body_text, signature_text = qr.split(".")
    body = base64.urlsafe_b64decode(body_text + "=" * (-len(body_text) % 4))
    signature = base64.urlsafe_b64decode(signature_text + "=" * (-len(signature_text) % 4))
    [entry] = bundle["publicKeys"]
    verify_key = nacl.signing.VerifyKey(base64.b64decode(entry["key"]))
    # then the signature over the payload bytes themselves verifies, under the payload's kid
    assert verify_key.verify(body, signature) == body
    assert json.loads(body)["kid"] == entry["kid"]
    # and one changed byte does not
    with pytest.raises(nacl.exceptions.BadSignatureError):
        verify_key.verify(body.replace(b"12", b"13"), signature)


def test_the_payload_is_two_unpadded_base64url_parts_of_compact_utf8_json():
    # given
    qr = sign_sample(keyring(), seat="VIP区 1排 1号")
    # when
    parts = qr.split(".")
    # then
    assert len(parts) == 2 and all(UNPADDED_B64URL.match(part) for part in parts)
    body = b64url_decode(parts[0])
    assert len(b64url_decode(parts[1])) == 64
    fields = json.loads(body.decode("utf-8"))
    assert list(fields) == FIELD_ORDER
    assert body == json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
    assert "VIP区 1排 1号".encode() in body
    assert fields["v"] == 1 and fields["session"] == SESSION and fields["seat"] == "VIP区 1排 1号"
    assert fields["iat"] == int((NOW - timedelta(days=3)).timestamp())
    assert fields["nbf"] == int((NOW - timedelta(hours=1)).timestamp())
    assert fields["exp"] == int((NOW + timedelta(hours=5)).timestamp())
    assert all(isinstance(fields[name], int) for name in ("iat", "nbf", "exp"))


def test_general_admission_has_a_null_seat_and_each_signing_a_fresh_nonce():
    # given
    ring = keyring()
    # when the same ticket is signed twice
    first, second = sign_sample(ring, seat=None), sign_sample(ring, seat=None)
    # then
    assert payload_fields(first)["seat"] is None
    assert payload_fields(first)["nonce"] != payload_fields(second)["nonce"]
    assert verify_ticket(first, ring.public_keys(now=NOW), now=NOW).seat is None


def test_kid_is_the_first_8_bytes_of_sha256_of_the_raw_public_key():
    # given
    public_key = bytes(nacl.signing.SigningKey(SEED).verify_key)
    # when
    kid = TicketKey(SEED).kid
    # then
    assert kid == b64url(hashlib.sha256(public_key).digest()[:8])
    assert len(kid) == 11 and kid == key_id(public_key)
    assert kid != TicketKey(OTHER_SEED).kid


def test_verify_ticket_answers_the_claims_of_a_good_ticket():
    # given
    ring = keyring()
    qr = sign_sample(ring, sn="T-42")
    # when
    claims = verify_ticket(qr, ring.public_keys(now=NOW), now=NOW)
    # then
    assert (claims.sn, claims.session, claims.seat, claims.kid) == (
        "T-42",
        SESSION,
        "A区 3排 12号",
        ring.current.kid,
    )
    assert claims.not_before < NOW.timestamp() < claims.expires_at


def test_each_kind_of_bad_ticket_is_refused_with_its_own_reason():
    # given one good ticket and variations of it
    ring = keyring()
    good = sign_sample(ring)
    signature = good.split(".")[1]
    tampered = b64url(with_fields(good, seat="A区 1排 1号")) + "." + signature
    foreign = sign_sample(keyring(OTHER_SEED))
    # a forger who claims our kid but signs with their own key
    forged = sign_raw(with_fields(good, sn="T-FORGED"), seed=OTHER_SEED)
    # when
    reasons = {
        "tampered": reason_of(tampered, ring),
        "forged": reason_of(forged, ring),
        "unknown key": reason_of(foreign, ring),
        "malformed": reason_of(good + ".x", ring),
        "not yet valid": reason_of(good, ring, at=NOW - timedelta(hours=2)),
        "expired": reason_of(good, ring, at=NOW + timedelta(hours=5)),
    }
    # then
    assert reasons == {
        "tampered": "BAD_SIGNATURE",
        "forged": "BAD_SIGNATURE",
        "unknown key": "UNKNOWN_KEY",
        "malformed": "MALFORMED",
        "not yet valid": "NOT_YET_VALID",
        "expired": "EXPIRED",
    }


def test_window_refusals_name_the_ticket_and_unverified_ones_do_not():
    # given
    ring = keyring()
    good = sign_sample(ring, sn="T-7")
    # when
    with pytest.raises(SignatureInvalid) as expired:
        verify_ticket(good, ring.public_keys(now=NOW), now=NOW + timedelta(days=1))
    with pytest.raises(SignatureInvalid) as unknown:
        verify_ticket(
            sign_sample(keyring(OTHER_SEED), sn="T-7"), ring.public_keys(now=NOW), now=NOW
        )
    # then
    assert expired.value.extensions() == {
        "code": "SIGNATURE_INVALID",
        "status": 6001,
        "reason": "EXPIRED",
        "ticketSn": "T-7",
    }
    assert "ticketSn" not in unknown.value.extensions()


@pytest.mark.parametrize(
    "qr",
    [
        "",
        "no-dot-at-all",
        "a.b.c",
        "eyJ2IjoxfQ==.AAAA",
        "####.####",
        "eyJ2IjoxfQ.AAAA",
        "x" * 5000,
    ],
)
def test_garbage_is_malformed(qr: str):
    assert reason_of(qr, keyring()) == "MALFORMED"


def test_a_padded_or_re_encoded_payload_is_malformed():
    # given a good ticket written with padding
    ring = keyring()
    body_text, signature_text = sign_sample(ring).split(".")
    padded = body_text + "=" * (-len(body_text) % 4) + "." + signature_text + "=="
    # when / then
    assert reason_of(padded, ring) == "MALFORMED"


def test_rotation_keeps_the_previous_key_until_its_valid_until():
    # given a ticket signed before the seed changed
    old = keyring(SEED)
    qr = sign_sample(old, expires_at=NOW + timedelta(days=2))
    valid_until = NOW + timedelta(days=1)
    rotated = TicketKeyring(TicketKey(OTHER_SEED), [old.current.public(valid_until=valid_until)])
    before, after = valid_until - timedelta(seconds=1), valid_until
    # when / then it still verifies while the old key is valid
    assert verify_ticket(qr, rotated.public_keys(now=before), now=before).kid == old.current.kid
    assert [k.kid for k in rotated.public_keys(now=before)] == [
        rotated.current.kid,
        old.current.kid,
    ]
    # and not from its valid_until on, even with a stale key list
    assert [k.kid for k in rotated.public_keys(now=after)] == [rotated.current.kid]
    with pytest.raises(SignatureInvalid) as refused:
        verify_ticket(qr, rotated.public_keys(now=before), now=after)
    assert refused.value.reason == "UNKNOWN_KEY"
    # and new tickets are signed with the new key
    assert payload_fields(sign_sample(rotated))["kid"] == rotated.current.kid


def test_rotation_in_the_offline_bundle_too():
    # given a bundle generated while the previous key was still valid
    old = keyring(SEED)
    qr = sign_sample(old, expires_at=NOW + timedelta(days=2))
    valid_until = NOW + timedelta(days=1)
    rotated = TicketKeyring(TicketKey(OTHER_SEED), [old.current.public(valid_until=valid_until)])
    bundle = scanner_bundle(
        session_id=SESSION, public_keys=rotated.public_keys(now=NOW), revoked=[], version=1, now=NOW
    )
    parsed = Bundle.parse(json.dumps(bundle.as_json()))
    # when / then the gate accepts the old ticket until the key's validUntil, not after
    assert bundle.as_json()["publicKeys"][1]["validUntil"] == valid_until.isoformat()
    assert verify(parsed, qr, session=SESSION, now=NOW).verdict is Verdict.VALID
    assert verify(parsed, qr, session=SESSION, now=valid_until).verdict is Verdict.UNKNOWN_KEY
    # and a bundle generated after it no longer lists it
    later = scanner_bundle(
        session_id=SESSION,
        public_keys=(*rotated.previous, rotated.current.public()),
        revoked=[],
        version=1,
        now=valid_until,
    )
    assert [k["kid"] for k in later.as_json()["publicKeys"]] == [rotated.current.kid]


def test_keyring_accepts_a_table_that_also_lists_the_current_key():
    # given every key as a table would hold them, the current one included
    current = TicketKey(SEED)
    old = TicketKey(OTHER_SEED)
    rows = [
        current.public(valid_until=NOW),
        old.public(valid_until=NOW + timedelta(hours=1)),
        old.public(valid_until=NOW + timedelta(hours=3)),
    ]
    # when
    ring = TicketKeyring(current, rows)
    # then the current key never expires and a previous key keeps its latest valid_until
    assert [k.valid_until for k in ring.public_keys(now=NOW)] == [None, NOW + timedelta(hours=3)]


def test_keys_refuse_inconsistent_input():
    old = TicketKey(OTHER_SEED)
    with pytest.raises(ValueError, match="valid_until"):
        TicketKeyring(TicketKey(SEED), [old.public()])
    with pytest.raises(ValueError, match="does not match"):
        PublicTicketKey(TicketKey(SEED).kid, old.public_key)
    with pytest.raises(ValueError, match="32 bytes"):
        TicketKey(SEED[:31])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sn", ""),
        ("event", ""),
        ("session", ""),
        ("seat", 12),
        ("expires_at", NOW - timedelta(hours=1)),
    ],
)
def test_sign_ticket_refuses_incomplete_tickets(field: str, value: object):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        sign_sample(keyring(), **{field: value})


def test_sign_ticket_refuses_a_payload_too_long_for_a_qr_code():
    with pytest.raises(ValueError, match="exceeds"):
        sign_sample(keyring(), seat="座" * 1000)


def test_the_private_key_is_never_shown_or_copied():
    # given
    ring = keyring()
    seed_forms = [SEED.hex(), base64.b64encode(SEED).decode(), b64url(SEED), repr(SEED)]
    # when
    shown = [
        repr(ring),
        str(ring),
        repr(ring.current),
        str(ring.current),
        repr(ring.public_keys(now=NOW)),
    ]
    # then
    assert not any(form in text for form in seed_forms for text in shown)
    assert "kid=" in repr(ring.current)
    for attempt in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="private key"):
            attempt(ring.current)
    assert not hasattr(ring.current, "__dict__")


def test_scanner_bundle_shape():
    # given
    ring = keyring()
    # when
    bundle = scanner_bundle(
        session_id=SESSION,
        public_keys=ring.public_keys(now=NOW),
        revoked=["T-3", "T-1", "T-3"],
        version=7,
        now=NOW,
    ).as_json()
    # then
    assert bundle["revoked"] == ["T-1", "T-3"] and bundle["version"] == 7
    assert bundle["generatedAt"] == "2025-06-01T12:00:00+00:00"
    [entry] = bundle["publicKeys"]
    assert entry["kid"] == ring.current.kid
    assert base64.b64decode(entry["key"], validate=True) == ring.current.public_key
    assert len(base64.b64decode(entry["key"])) == 32
    assert Bundle.parse(bundle).revoked == {"T-1", "T-3"}


chinese_labels = st.text(
    alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF)
    | st.sampled_from("区排号 0123456789"),
    min_size=1,
    max_size=24,
)


@settings(max_examples=60, deadline=None)
@given(
    sn=st.text(min_size=1, max_size=64),
    seat=st.none() | st.text(max_size=48) | chinese_labels,
)
def test_sign_then_verify_round_trips(sn: str, seat: str | None):
    # given
    ring = keyring()
    # when
    qr = sign_sample(ring, sn=sn, seat=seat)
    # then both the server and the standalone verifier read back exactly what was signed
    claims = verify_ticket(qr, ring.public_keys(now=NOW), now=NOW)
    assert (claims.sn, claims.seat, claims.session) == (sn, seat, SESSION)
    bundle = Bundle.parse(
        scanner_bundle(
            session_id=SESSION,
            public_keys=ring.public_keys(now=NOW),
            revoked=[],
            version=1,
            now=NOW,
        ).as_json()
    )
    result = verify(bundle, qr, session=SESSION, now=NOW)
    assert result.verdict is Verdict.VALID and result.claims == claims
