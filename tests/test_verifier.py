"""The standalone gate verifier: every verdict, strict parsing, and independence from the rest
of boxoffice."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import boxoffice.verifier
from boxoffice.services.ticket_signing import scanner_bundle
from boxoffice.verifier import Bundle, Verdict, verify
from tests.signed_tickets import (
    NOW,
    OTHER_SEED,
    SESSION,
    b64url,
    keyring,
    sign_raw,
    sign_sample,
    with_fields,
)


def bundle_json(revoked: list[str] | None = None) -> dict[str, Any]:
    ring = keyring()
    return scanner_bundle(
        session_id=SESSION,
        public_keys=ring.public_keys(now=NOW),
        revoked=revoked or [],
        version=3,
        now=NOW,
    ).as_json()


def test_each_kind_of_ticket_gets_its_own_verdict():
    # given a bundle revoking one ticket, and tickets of every kind
    ring = keyring()
    bundle = Bundle.parse(bundle_json(revoked=["T-REVOKED"]))
    good = sign_sample(ring, sn="T-GOOD")
    tickets = {
        "good": good,
        "revoked": sign_sample(ring, sn="T-REVOKED"),
        "tampered": b64url(with_fields(good, seat="VIP 1")) + "." + good.split(".")[1],
        "unknown key": sign_sample(keyring(OTHER_SEED)),
        "other session": sign_sample(ring, session="01JOTHERSESSION000000000AA"),
        "not yet valid": sign_sample(ring, not_before=NOW + timedelta(minutes=1)),
        "expired": sign_sample(ring, expires_at=NOW),
        "malformed": good.replace(".", ""),
    }
    # when
    verdicts = {
        name: verify(bundle, qr, session=SESSION, now=NOW).verdict for name, qr in tickets.items()
    }
    # then
    assert verdicts == {
        "good": Verdict.VALID,
        "revoked": Verdict.REVOKED,
        "tampered": Verdict.BAD_SIGNATURE,
        "unknown key": Verdict.UNKNOWN_KEY,
        "other session": Verdict.WRONG_SESSION,
        "not yet valid": Verdict.NOT_YET_VALID,
        "expired": Verdict.EXPIRED,
        "malformed": Verdict.MALFORMED,
    }
    assert len(set(verdicts.values())) == len(Verdict)


def test_claims_are_reported_only_once_the_signature_verified():
    # given
    ring = keyring()
    bundle = Bundle.parse(bundle_json(revoked=["T-R"]))
    revoked = sign_sample(ring, sn="T-R")
    forged = sign_raw(with_fields(revoked, sn="T-R2"), seed=OTHER_SEED)
    # when
    refused = verify(bundle, revoked, session=SESSION, now=NOW)
    unverified = verify(bundle, forged, session=SESSION, now=NOW)
    # then
    assert refused.verdict is Verdict.REVOKED and refused.sn == "T-R" and not refused.ok
    assert refused.claims is not None and refused.claims.seat == "A区 3排 12号"
    assert unverified.verdict is Verdict.BAD_SIGNATURE
    assert unverified.claims is None and unverified.sn is None


def test_the_window_is_closed_at_nbf_open_at_exp_and_leeway_widens_it():
    # given a ticket valid for exactly [NOW, NOW + 1h)
    ring = keyring()
    bundle = Bundle.parse(bundle_json())
    qr = sign_sample(ring, not_before=NOW, expires_at=NOW + timedelta(hours=1))
    end = NOW + timedelta(hours=1)

    def at(when: Any, leeway: int = 0) -> Verdict:
        return verify(bundle, qr, session=SESSION, now=when, leeway_seconds=leeway).verdict

    # then
    assert at(NOW) is Verdict.VALID
    assert at(NOW.timestamp() - 1) is Verdict.NOT_YET_VALID
    assert at(end - timedelta(seconds=1)) is Verdict.VALID
    assert at(end) is Verdict.EXPIRED
    assert at(end, leeway=30) is Verdict.VALID
    assert at(NOW - timedelta(seconds=30), leeway=30) is Verdict.VALID
    # naive datetimes are UTC
    assert at(NOW.replace(tzinfo=None)) is Verdict.VALID
    assert at(end.replace(tzinfo=None)) is Verdict.EXPIRED


def test_a_trailing_newline_from_the_scanner_is_ignored():
    qr = sign_sample(keyring())
    assert verify(Bundle.parse(bundle_json()), qr + "\n", session=SESSION, now=NOW).ok


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda good: good, Verdict.VALID),
        (lambda good: good[:-1] + b',"sn":"T-OTHER"}', Verdict.MALFORMED),
        (lambda good: good[:-1] + b',"extra":NaN}', Verdict.MALFORMED),
        (lambda good: b"[" + good + b"]", Verdict.MALFORMED),
        (lambda good: good[:-1], Verdict.MALFORMED),
        (lambda good: good.replace("区".encode(), b"\xff"), Verdict.MALFORMED),
    ],
    ids=["control", "duplicate keys", "NaN", "not an object", "not json", "not utf-8"],
)
def test_unreadable_payloads_are_malformed(build: Any, expected: Verdict):
    # given an otherwise good payload changed so it no longer reads cleanly, signed by our key
    good = with_fields(sign_sample(keyring()))
    qr = sign_raw(build(good))
    # when / then
    assert verify(Bundle.parse(bundle_json()), qr, session=SESSION, now=NOW).verdict is expected


@pytest.mark.parametrize(
    "change",
    [
        {"v": 2},
        {"v": True},
        {"sn": ""},
        {"sn": 12},
        {"exp": "tomorrow"},
        {"nbf": 1.5},
        {"seat": ["A", 1]},
    ],
)
def test_signed_payloads_with_bad_fields_are_malformed(change: dict[str, Any]):
    # given a payload signed by our own key but with a field of the wrong kind
    qr = sign_raw(with_fields(sign_sample(keyring()), **change))
    # when / then
    assert verify(Bundle.parse(bundle_json()), qr, session=SESSION, now=NOW).verdict is (
        Verdict.MALFORMED
    )


def test_a_payload_without_seat_is_malformed():
    # given a signed payload lacking the seat field altogether
    fields = json.loads(with_fields(sign_sample(keyring())))
    del fields["seat"]
    qr = sign_raw(json.dumps(fields, separators=(",", ":")).encode())
    # when / then
    assert verify(Bundle.parse(bundle_json()), qr, session=SESSION, now=NOW).verdict is (
        Verdict.MALFORMED
    )


def test_non_canonical_base64url_is_malformed():
    # given a good ticket whose last signature character carries stray low bits
    qr = sign_sample(keyring())
    body, signature = qr.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(signature[-1])
    twisted = signature[:-1] + alphabet[last ^ 1]
    # when / then
    assert boxoffice.verifier.b64url_decode(twisted) is None
    assert verify(
        Bundle.parse(bundle_json()), f"{body}.{twisted}", session=SESSION, now=NOW
    ).verdict is (Verdict.MALFORMED)


def test_bundle_parse_reads_json_text_and_refuses_broken_bundles():
    # given
    good = bundle_json(revoked=["T-1"])
    # when
    parsed = Bundle.parse(json.dumps(good))
    # then
    assert parsed.version == 3 and parsed.revoked == {"T-1"} and parsed.session_id == SESSION
    assert parsed.generated_at == good["generatedAt"]
    # and a bundle without the optional fields (as a narrow GraphQL selection gives) works
    narrow = {
        "publicKeys": [{"kid": k["kid"], "key": k["key"]} for k in good["publicKeys"]],
        "revoked": ["T-1"],
        "version": 3,
        "generatedAt": good["generatedAt"],
    }
    assert verify(Bundle.parse(narrow), sign_sample(keyring()), session=SESSION, now=NOW).ok
    broken = [
        [],
        {**good, "version": "3"},
        {**good, "revoked": [1]},
        {**good, "publicKeys": [{"kid": "x", "key": "AAAA"}]},
        {**good, "publicKeys": [{"kid": "x", "key": "not base64!"}]},
        {k: v for k, v in good.items() if k != "generatedAt"},
    ]
    for data in broken:
        with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
            Bundle.parse(data)  # type: ignore[arg-type]


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            names.add((node.module or "").split(".")[0])
    return names


def test_the_verifier_imports_only_the_standard_library_and_pynacl():
    # given
    source = Path(boxoffice.verifier.__file__)
    # when
    imported = _imported_modules(source)
    # then
    assert imported - set(sys.stdlib_module_names) == {"nacl"}
    assert "boxoffice" not in imported


GATE_SCRIPT = """
import importlib.abc, json, sys

class NoBoxoffice(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "boxoffice" or name.startswith("boxoffice."):
            raise ImportError("boxoffice is not installed at the gate")
        return None

sys.meta_path.insert(0, NoBoxoffice())
sys.path.insert(0, sys.argv[1])
import gate_verifier

job = json.load(sys.stdin)
bundle = gate_verifier.Bundle.parse(job["bundle"])
for payload in job["payloads"]:
    result = gate_verifier.verify(bundle, payload, session=job["session"], now=job["now"])
    print(result.verdict.value, result.sn)
print("boxoffice loaded:", any(m.split(".")[0] == "boxoffice" for m in sys.modules))
"""


def test_the_verifier_runs_alone_in_a_process_without_boxoffice(tmp_path: Path):
    # given the module copied on its own into a gate app, and a process that cannot import boxoffice
    shutil.copy(boxoffice.verifier.__file__, tmp_path / "gate_verifier.py")
    ring = keyring()
    job = {
        "bundle": bundle_json(revoked=["T-OUT"]),
        "payloads": [sign_sample(ring, sn="T-IN"), sign_sample(ring, sn="T-OUT")],
        "session": SESSION,
        "now": NOW.timestamp(),
    }
    # when
    done = subprocess.run(
        [sys.executable, "-I", "-c", GATE_SCRIPT, str(tmp_path)],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # then
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["VALID T-IN", "REVOKED T-OUT", "boxoffice loaded: False"]
