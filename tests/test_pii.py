"""Personal data at rest: sealed with a key id, found by keyed hashes, re-sealed when the key
rotates — on both configurations, reading the raw rows."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Text, text, type_coerce
from sqlmodel import col, select

import boxoffice.models
from boxoffice import pii
from boxoffice.models.base import EncryptedString
from boxoffice.models.identity import SandboxMessage, User
from boxoffice.models.orders import Order
from boxoffice.pii import PiiCipher, PiiKeyError, PiiKeys
from boxoffice.runtime import Runtime
from boxoffice.services import accounts
from boxoffice.services.pii_rotation import SEALED, rotate_pii_key
from tests.conftest import TEST_PII_HASH_KEY, TEST_PII_KEYS
from tests.helpers import PASSWORD, gql, make_user, viewer_for
from tests.order_factories import hold_for, on_sale, order_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }"""
LOGIN = "mutation($i: LoginInput!) { login(input: $i) { user { id } } }"
SEND = "mutation($p: String!) { sendSmsCode(phone: $p, purpose: REGISTER) }"


def key(n: int) -> bytes:
    return bytes([n]) * 32


def cipher_of(keys: dict[str, bytes], current: str, hash_key: bytes = key(9)) -> PiiCipher:
    return PiiCipher(PiiKeys(keys=keys, current=current, hash_key=hash_key))


@pytest.fixture
def restore_cipher() -> Iterator[None]:
    before = pii.cipher()
    yield
    pii.install(before)


def test_values_are_sealed_with_their_key_id_and_open_after_rotation():
    old = cipher_of({"k1": key(1)}, "k1")
    sealed = old.encrypt("+8613800138000")
    # a ciphertext names its key, hides the value, and differs every time
    assert sealed.startswith("pii1:k1:") and "13800138000" not in sealed
    assert old.encrypt("+8613800138000") != sealed
    assert old.decrypt(sealed) == "+8613800138000"
    # a rotated cipher writes with the new key and still opens the old values
    rotated = cipher_of({"k1": key(1), "k2": key(2)}, "k2")
    assert rotated.decrypt(sealed) == "+8613800138000"
    assert rotated.encrypt("x").startswith("pii1:k2:")
    assert rotated.needs_resealing(sealed) and not rotated.needs_resealing(rotated.encrypt("x"))
    # without the key, or with a tampered value, nothing opens
    with pytest.raises(PiiKeyError):
        cipher_of({"k2": key(2)}, "k2").decrypt(sealed)
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(PiiKeyError):
        old.decrypt(tampered)


def test_lookup_hashes_are_keyed():
    a, b = cipher_of({"k1": key(1)}, "k1", key(7)), cipher_of({"k1": key(1)}, "k1", key(8))
    assert a.lookup_hash("phone", "+8613800138000") == a.lookup_hash("phone", "+8613800138000")
    assert a.lookup_hash("phone", "+8613800138000") != b.lookup_hash("phone", "+8613800138000")
    assert a.lookup_hash("phone", "x") != a.lookup_hash("email", "x")


def test_bad_keys_are_refused():
    with pytest.raises(PiiKeyError):
        cipher_of({"k1": b"short"}, "k1")
    with pytest.raises(PiiKeyError):
        cipher_of({"k1": key(1)}, "k2")
    with pytest.raises(PiiKeyError):
        cipher_of({"bad id!": key(1)}, "bad id!")


def test_an_encrypted_column_cannot_be_searched():
    with pytest.raises(TypeError, match="_hash"):
        select(User).where(User.email == "ann@example.com")
    assert select(User).where(col(User.email).is_(None)) is not None


def test_every_encrypted_column_is_rotated():
    encrypted = {
        (table.name, column.name)
        for table in boxoffice.models.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, EncryptedString)
    }
    rotated = {(model.__tablename__, c) for model, columns in SEALED for c in columns}
    assert encrypted == rotated


async def raw_row(rt: Runtime, table: str, row_id: str) -> dict[str, Any]:
    async with rt.db.read() as session:
        found = await session.exec(  # type: ignore[call-overload]
            text(f'SELECT * FROM "{table}" WHERE id = :id'), params={"id": row_id}
        )
        return dict(found.mappings().one())


async def sms_code(rt: Runtime, phone: str) -> str:
    async with rt.db.read() as session:
        rows = await session.exec(
            select(SandboxMessage).where(SandboxMessage.recipient_hash == pii.phone_hash(phone))
        )
        body = sorted(rows.all(), key=lambda m: m.created_at)[-1].body
    return next(word for word in body.replace(".", " ").split() if word.isdigit())


async def test_personal_data_is_ciphertext_at_rest_and_found_by_hash(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a customer who signed up by phone, added an e-mail-less real name, and ordered
    # with a contact; and one who signed up by e-mail
    assert (await gql(client, SEND, {"p": "13800138000"})).data
    code = await sms_code(rt, "+8613800138000")
    signed = (
        await gql(
            client,
            REGISTER,
            {"i": {"phone": "13800138000", "smsCode": code, "password": PASSWORD, "nickname": "p"}},
        )
    ).data["register"]
    user_id = signed["user"]["id"]
    async with rt.db.read() as session:
        customer = await session.get(User, user_id)
    assert customer is not None
    await accounts.update_profile(
        db=rt.db,
        broker=rt.backends.broker,
        viewer=await viewer_for(rt, customer),
        real_name="王小明",
    )
    sale = await on_sale(rt)
    order = await order_for(
        rt,
        customer,
        await hold_for(rt, customer, sale.session, seat_ids=sale.seat_ids[:1]),
        contact_name="王小明",
        contact_phone="13800138000",
    )
    by_mail = await make_user(rt, "Ann.Lee@Example.com")
    # then no phone number, address or name is stored in the clear
    user_row = await raw_row(rt, "users", user_id)
    order_row = await raw_row(rt, "orders", order.id)
    mail_row = await raw_row(rt, "users", by_mail.id)
    stored = " ".join(str(v) for row in (user_row, order_row, mail_row) for v in row.values())
    for secret in ("13800138000", "王小明", "ann.lee@"):
        assert secret not in stored
    for value in (user_row["phone"], user_row["real_name"], order_row["contact_phone"]):
        assert value.startswith("pii1:test1:")
    assert (
        user_row["phone_hash"]
        == order_row["contact_phone_hash"]
        == pii.phone_hash("+8613800138000")
    )
    assert mail_row["email_hash"] == pii.email_hash("ann.lee@example.com")
    # and the application still reads them, and finds people by them
    assert customer.phone == "+8613800138000" and customer.real_name is None
    async with rt.db.read() as session:
        fresh = await session.get(User, user_id)
    assert fresh is not None and fresh.real_name == "王小明"
    for login in (
        {"phone": "13800138000", "password": PASSWORD},
        {"email": "ann.lee@example.com", "password": PASSWORD},
    ):
        assert (await gql(client, LOGIN, {"i": login})).data["login"]["user"]["id"]
    await rt.backends.rate_limiter.reset("sms:phone-min:+8613800138000")
    taken = await gql(client, SEND, {"p": "+8613800138000"})
    assert taken.code == "ALREADY_EXISTS"
    duplicate = await gql(
        client,
        REGISTER,
        {"i": {"email": "ANN.LEE@example.com", "password": PASSWORD, "nickname": "again"}},
    )
    assert duplicate.code == "ALREADY_EXISTS"


async def test_rotating_the_key_reseals_every_row(rt: Runtime, restore_cipher: None):
    # given rows sealed with the test key
    user = await make_user(rt, "rota@example.com")
    sale = await on_sale(rt)
    order = await order_for(
        rt,
        user,
        await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:1]),
        contact_name="李雷",
        contact_phone="13912345678",
    )
    old_keys = pii.cipher().keys
    # when a new key becomes current and the rotation runs
    rotated = PiiCipher(
        PiiKeys(
            keys={**old_keys.keys, "test2": key(2)}, current="test2", hash_key=old_keys.hash_key
        )
    )
    pii.install(rotated)
    report = {r.table: r for r in await rotate_pii_key(rt.db, rotated)}
    # then every value is sealed with the new key, and nothing is left for a second run
    assert report["users"].resealed >= 1 and report["orders"].resealed == 1
    assert (await raw_row(rt, "users", user.id))["email"].startswith("pii1:test2:")
    assert (await raw_row(rt, "orders", order.id))["contact_phone"].startswith("pii1:test2:")
    assert all(r.resealed == 0 for r in await rotate_pii_key(rt.db, rotated))
    # and the old key can go: the new one alone reads everything
    pii.install(
        PiiCipher(PiiKeys(keys={"test2": key(2)}, current="test2", hash_key=old_keys.hash_key))
    )
    async with rt.db.read() as session:
        read_back = await session.get(Order, order.id)
        found = (
            await session.exec(
                select(User).where(User.email_hash == pii.email_hash("rota@example.com"))
            )
        ).one()
    assert read_back is not None and read_back.contact_name == "李雷"
    assert found.email == "rota@example.com"


async def test_a_new_hash_key_is_rolled_out_by_rehashing(rt: Runtime, restore_cipher: None):
    user = await make_user(rt, "hash@example.com")
    old = pii.cipher().keys
    fresh = PiiCipher(PiiKeys(keys=old.keys, current=old.current, hash_key=key(5)))
    pii.install(fresh)
    await rotate_pii_key(rt.db, fresh, rehash=True)
    async with rt.db.read() as session:
        found = (
            await session.exec(
                select(User).where(User.email_hash == pii.email_hash("hash@example.com"))
            )
        ).one()
    assert found.id == user.id


@pytest.mark.parametrize("backend", ["embedded"])
async def test_the_rotate_command(rt: Runtime, tmp_path):  # type: ignore[no-untyped-def]
    # given a row sealed with the test key
    user = await make_user(rt, "cli@example.com")
    new_key = base64.b64encode(key(3)).decode()
    env = {
        **os.environ,
        "BOXOFFICE_ENV": "test",
        "BOXOFFICE_DATABASE_URL": rt.settings.database_url,
        "BOXOFFICE_DATA_DIR": str(tmp_path),
        "BOXOFFICE_PII_KEYS": f"{TEST_PII_KEYS},test3={new_key}",
        "BOXOFFICE_PII_KEY_ID": "test3",
        "BOXOFFICE_PII_HASH_KEY": TEST_PII_HASH_KEY,
        "BOXOFFICE_LOG_LEVEL": "WARNING",
    }
    # when the operator runs the command with a new current key
    out = subprocess.run(
        [sys.executable, "-m", "boxoffice", "rotate-pii-key"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # then the row is sealed with it
    assert "users: 1 of 1 re-sealed" in out.stdout
    assert (await raw_row(rt, "users", user.id))["email"].startswith("pii1:test3:")
    async with rt.db.read() as session:
        raw = await session.exec(select(type_coerce(User.phone, Text)).where(User.id == user.id))
        assert raw.one() is None
