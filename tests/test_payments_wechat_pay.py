"""WeChat Pay v3: signed and encrypted notices, signed requests, and Native orders, refunds and
queries against a local server that plays WeChat Pay and checks our Authorization header."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxoffice.clock import utcnow
from boxoffice.providers.payments import (
    CallbackOutcome,
    CallbackRejected,
    CallbackRequest,
    PaymentOrder,
    PaymentStatus,
    ProviderError,
    RefundOrder,
    RefundStatus,
    RejectReason,
)
from boxoffice.providers.payments.wechat_pay import WechatPayProvider
from tests.live_servers import serving
from tests.services import free_port

MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PLATFORM_SERIAL = "PUB_KEY_ID_0119000001092024050100000000000001"


@dataclass(frozen=True)
class Keys:
    merchant: RSAPrivateKey  # ours: signs requests
    platform: RSAPrivateKey  # WeChat Pay's: signs notices and answers
    stranger: RSAPrivateKey
    apiv3: bytes


@pytest.fixture(scope="module")
def keys() -> Keys:
    def make() -> RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(
        merchant=make(), platform=make(), stranger=make(), apiv3=os.urandom(16).hex().encode()
    )


def sign(key: RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_by(key: RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def platform_headers(
    key: RSAPrivateKey, body: bytes, *, serial: str = PLATFORM_SERIAL, at: float | None = None
) -> dict[str, str]:
    """WeChat Pay's signature headers over ``timestamp\\nnonce\\nbody\\n``."""
    timestamp = str(int(at if at is not None else time.time()))
    nonce = os.urandom(16).hex()
    return {
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign(key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n"),
        "Wechatpay-Serial": serial,
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def transaction(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": "P0001",
        "transaction_id": "4200000985202405011234567890",
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "attach": "",
        "success_time": "2024-05-01T20:00:00+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 1280, "payer_total": 1280, "currency": "CNY", "payer_currency": "CNY"},
    }
    value.update(overrides)
    return value


def notice(
    keys: Keys,
    content: dict[str, Any] | None = None,
    *,
    signer: RSAPrivateKey | None = None,
    serial: str = PLATFORM_SERIAL,
    at: float | None = None,
    aes_key: bytes | None = None,
    associated_data: str = "transaction",
    decrypt_with: str | None = None,
    algorithm: str = "AEAD_AES_256_GCM",
) -> CallbackRequest:
    """A payment notice as WeChat Pay posts it: the transaction AES-256-GCM encrypted with the
    APIv3 key, the whole body signed with the platform key."""
    nonce = os.urandom(6).hex()
    ciphertext = AESGCM(aes_key or keys.apiv3).encrypt(
        nonce.encode(),
        json.dumps(content or transaction(), ensure_ascii=False).encode(),
        associated_data.encode(),
    )
    body = json.dumps(
        {
            "id": "EV-2018022511223320873",
            "create_time": "2024-05-01T20:00:01+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": algorithm,
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": decrypt_with if decrypt_with is not None else associated_data,
                "nonce": nonce,
            },
        },
        ensure_ascii=False,
    ).encode()
    headers = platform_headers(signer or keys.platform, body, serial=serial, at=at)
    return CallbackRequest(body=body, headers={**headers, "Content-Type": "application/json"})


@pytest.fixture
async def make_provider(keys: Keys) -> AsyncIterator[Callable[..., WechatPayProvider]]:
    made: list[WechatPayProvider] = []

    def make(**overrides: Any) -> WechatPayProvider:
        options: dict[str, Any] = {
            "mchid": MCHID,
            "appid": APPID,
            "merchant_serial": MERCHANT_SERIAL,
            "merchant_private_key": keys.merchant,
            "apiv3_key": keys.apiv3,
            "platform_public_keys": {PLATFORM_SERIAL: keys.platform.public_key()},
        }
        options.update(overrides)
        provider = WechatPayProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def rejection(provider: WechatPayProvider, request: CallbackRequest) -> RejectReason:
    with pytest.raises(CallbackRejected) as caught:
        provider.verify_callback(request, now=utcnow())
    return caught.value.reason


# -- notices --------------------------------------------------------------------------------


async def test_genuine_notice_verifies_and_decrypts_to_amount_merchant_and_outcome(
    keys, make_provider
):
    verified = make_provider().verify_callback(notice(keys), now=utcnow())
    assert verified.payment_no == "P0001"
    assert verified.provider_trade_no == "4200000985202405011234567890"
    assert verified.outcome is CallbackOutcome.PAID
    assert (verified.amount_minor, verified.currency) == (1280, "CNY")
    assert verified.merchant_id == MCHID
    assert verified.paid_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert verified.event_id == "EV-2018022511223320873"
    assert verified.raw["payer"]["openid"] == "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        ("SUCCESS", CallbackOutcome.PAID),
        ("PAYERROR", CallbackOutcome.FAILED),
        ("CLOSED", CallbackOutcome.CLOSED),
        ("NOTPAY", CallbackOutcome.PENDING),
    ],
)
async def test_trade_state_maps_to_an_outcome(keys, make_provider, state, outcome):
    verified = make_provider().verify_callback(
        notice(keys, transaction(trade_state=state)), now=utcnow()
    )
    assert verified.outcome is outcome


def _forged(keys: Keys) -> CallbackRequest:
    return notice(keys, signer=keys.stranger)


def _tampered(keys: Keys) -> CallbackRequest:
    genuine = notice(keys)
    body = genuine.body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESs")
    return CallbackRequest(body=body, headers=genuine.headers)


def _stale(keys: Keys) -> CallbackRequest:
    return notice(keys, at=time.time() - 6 * 60)


def _from_the_future(keys: Keys) -> CallbackRequest:
    return notice(keys, at=time.time() + 6 * 60)


def _unknown_serial(keys: Keys) -> CallbackRequest:
    return notice(keys, signer=keys.stranger, serial="PUB_KEY_ID_UNKNOWN")


def _other_apiv3_key(keys: Keys) -> CallbackRequest:
    return notice(keys, aes_key=os.urandom(16).hex().encode())


def _other_associated_data(keys: Keys) -> CallbackRequest:
    return notice(keys, decrypt_with="refund")


def _ciphertext_not_base64(keys: Keys) -> CallbackRequest:
    genuine = notice(keys)
    payload = json.loads(genuine.body)
    payload["resource"]["ciphertext"] = "%%%not base64%%%"
    body = json.dumps(payload).encode()
    return CallbackRequest(body=body, headers=platform_headers(keys.platform, body))


def _other_merchant(keys: Keys) -> CallbackRequest:
    return notice(keys, transaction(mchid="1900009999"))


def _other_app(keys: Keys) -> CallbackRequest:
    return notice(keys, transaction(appid="wx0000000000000000"))


def _no_signature_headers(keys: Keys) -> CallbackRequest:
    return CallbackRequest(body=notice(keys).body, headers={"Content-Type": "application/json"})


def _other_algorithm(keys: Keys) -> CallbackRequest:
    return notice(keys, algorithm="AEAD_SM4_GCM")


def _amount_not_in_fen(keys: Keys) -> CallbackRequest:
    return notice(keys, transaction(amount={"total": "12.80", "currency": "CNY"}))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_forged, RejectReason.SIGNATURE_INVALID),
        (_tampered, RejectReason.SIGNATURE_INVALID),
        (_stale, RejectReason.STALE_TIMESTAMP),
        (_from_the_future, RejectReason.STALE_TIMESTAMP),
        (_unknown_serial, RejectReason.UNKNOWN_KEY),
        (_other_apiv3_key, RejectReason.DECRYPT_FAILED),
        (_other_associated_data, RejectReason.DECRYPT_FAILED),
        (_ciphertext_not_base64, RejectReason.DECRYPT_FAILED),
        (_other_merchant, RejectReason.MERCHANT_MISMATCH),
        (_other_app, RejectReason.MERCHANT_MISMATCH),
        (_no_signature_headers, RejectReason.MALFORMED),
        (_other_algorithm, RejectReason.MALFORMED),
        (_amount_not_in_fen, RejectReason.MALFORMED),
    ],
)
async def test_notices_that_do_not_prove_themselves_are_rejected_with_their_reason(
    keys, make_provider, make: Callable[[Keys], CallbackRequest], reason: RejectReason
):
    assert rejection(make_provider(), make(keys)) is reason


async def test_a_notice_signed_with_a_rotated_platform_key_verifies_by_its_serial(
    keys, make_provider
):
    # given the platform key is being rotated and both serials are configured
    provider = make_provider(
        platform_public_keys={
            PLATFORM_SERIAL: keys.platform.public_key(),
            "NEW_SERIAL": keys.stranger.public_key(),
        }
    )
    # then each key verifies only under its own serial
    rotated = notice(keys, signer=keys.stranger, serial="NEW_SERIAL")
    assert provider.verify_callback(rotated, now=utcnow()).payment_no == "P0001"
    crossed = notice(keys, signer=keys.stranger, serial=PLATFORM_SERIAL)
    assert rejection(provider, crossed) is RejectReason.SIGNATURE_INVALID


async def test_acknowledgements_have_wechat_pays_format(make_provider):
    provider = make_provider()
    accepted, rejected = provider.ack(True), provider.ack(False)
    assert (accepted.status_code, json.loads(accepted.body)) == (200, {"code": "SUCCESS"})
    assert 400 <= rejected.status_code < 600
    assert json.loads(rejected.body)["code"] == "FAIL" and json.loads(rejected.body)["message"]
    assert accepted.headers["content-type"] == "application/json"


# -- calls against a local WeChat Pay -------------------------------------------------------

_AUTH = re.compile(
    r'WECHATPAY2-SHA256-RSA2048 mchid="(?P<mchid>[^"]+)",nonce_str="(?P<nonce>[^"]+)",'
    r'timestamp="(?P<timestamp>\d+)",serial_no="(?P<serial>[^"]+)",signature="(?P<signature>[^"]+)"'
)


@dataclass
class FakeWechatPay:
    """WeChat Pay's API: verifies the Authorization header of every request with our public key
    as WeChat Pay does, and signs every answer with the platform key (or as told, badly)."""

    merchant_public_key: RSAPublicKey
    platform_key: RSAPrivateKey
    answer_key: RSAPrivateKey | None = None
    answer_serial: str = PLATFORM_SERIAL
    answer_age: float = 0.0
    verified: list[bool] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    paid: dict[str, int] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v3/pay/transactions/native", self.native, methods=["POST"]),
                Route("/v3/refund/domestic/refunds", self.refund, methods=["POST"]),
                Route("/v3/pay/transactions/out-trade-no/{no}", self.query, methods=["GET"]),
            ]
        )

    def answer(self, status_code: int, data: dict[str, Any] | None) -> Response:
        body = json.dumps(data, ensure_ascii=False).encode() if data is not None else b""
        headers = platform_headers(
            self.answer_key or self.platform_key,
            body,
            serial=self.answer_serial,
            at=time.time() - self.answer_age,
        )
        return Response(
            body, status_code=status_code, headers=headers, media_type="application/json"
        )

    async def authenticated(self, request: Request) -> dict[str, Any] | None:
        body = await request.body()
        match = _AUTH.fullmatch(request.headers.get("authorization", ""))
        query = request.scope["query_string"].decode()
        target = request.scope["raw_path"].decode() + (f"?{query}" if query else "")
        ok = (
            match is not None
            and match["mchid"] == MCHID
            and match["serial"] == MERCHANT_SERIAL
            and abs(time.time() - int(match["timestamp"])) < 300
            and signed_by(
                self.merchant_public_key,
                f"{request.method}\n{target}\n{match['timestamp']}\n{match['nonce']}\n".encode()
                + body
                + b"\n",
                match["signature"],
            )
        )
        self.verified.append(bool(ok))
        if not ok:
            return None
        data = json.loads(body) if body else {}
        self.bodies.append(data)
        return data

    async def native(self, request: Request) -> Response:
        data = await self.authenticated(request)
        if data is None:
            return self.answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        return self.answer(200, {"code_url": f"weixin://wxpay/bizpayurl?pr={data['out_trade_no']}"})

    async def refund(self, request: Request) -> Response:
        data = await self.authenticated(request)
        if data is None:
            return self.answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        number = data["out_refund_no"]
        if number == "R-BUSY":
            return self.answer(500, {"code": "SYSTEM_ERROR", "message": "系统繁忙"})
        if number == "R-NOT-ENOUGH":
            return self.answer(403, {"code": "NOT_ENOUGH", "message": "余额不足"})
        known = self.refunds.get(number)
        if known is None:
            known = self.refunds[number] = {
                "refund_id": f"5030000{len(self.refunds):07d}",
                "out_refund_no": number,
                "out_trade_no": data["out_trade_no"],
                "status": "PROCESSING",
                "amount": data["amount"],
            }
        else:  # settled by the time it is asked again
            known["status"] = "SUCCESS"
        return self.answer(200, known)

    async def query(self, request: Request) -> Response:
        if await self.authenticated(request) is None:
            return self.answer(401, {"code": "SIGN_ERROR", "message": "签名错误"})
        number = request.path_params["no"]
        if number not in self.paid:
            return self.answer(404, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"})
        return self.answer(
            200,
            transaction(
                out_trade_no=number, amount={"total": self.paid[number], "currency": "CNY"}
            ),
        )


@pytest.fixture
async def fake_wechat(keys: Keys) -> AsyncIterator[tuple[FakeWechatPay, str]]:
    fake = FakeWechatPay(merchant_public_key=keys.merchant.public_key(), platform_key=keys.platform)
    async with serving(fake.app()) as server:
        yield fake, server.http_url


def order() -> PaymentOrder:
    return PaymentOrder(
        payment_no="P0001",
        amount_minor=1280,
        currency="CNY",
        subject="演唱会门票",
        notify_url="https://box.example.com/payments/wechat_pay/notify",
        expires_at=datetime(2024, 5, 1, 12, 15, tzinfo=UTC),
    )


def refund(refund_no: str, amount_minor: int = 500) -> RefundOrder:
    return RefundOrder(
        payment_no="P0001",
        refund_no=refund_no,
        amount_minor=amount_minor,
        total_minor=1280,
        currency="CNY",
        reason="行程变更",
    )


async def test_start_places_a_native_order_wechat_pay_accepts(fake_wechat, make_provider):
    fake, url = fake_wechat
    started = await make_provider(base_url=url).start(order())
    assert started.pay_url == "weixin://wxpay/bizpayurl?pr=P0001"
    assert started.params == {"code_url": "weixin://wxpay/bizpayurl?pr=P0001"}
    assert fake.verified == [True]
    assert fake.bodies[0] == {
        "appid": APPID,
        "mchid": MCHID,
        "description": "演唱会门票",
        "out_trade_no": "P0001",
        "time_expire": "2024-05-01T20:15:00+08:00",
        "notify_url": "https://box.example.com/payments/wechat_pay/notify",
        "amount": {"total": 1280, "currency": "CNY"},
    }


async def test_a_request_signed_with_another_key_is_refused_by_wechat_pay(
    keys, fake_wechat, make_provider
):
    fake, url = fake_wechat
    provider = make_provider(base_url=url, merchant_private_key=keys.stranger)
    with pytest.raises(ProviderError) as caught:
        await provider.start(order())
    assert fake.verified == [False]
    assert caught.value.code == "SIGN_ERROR" and not caught.value.retryable


async def test_refund_is_pending_then_succeeds_under_the_same_refund_no(fake_wechat, make_provider):
    fake, url = fake_wechat
    provider = make_provider(base_url=url)
    first = await provider.refund(refund("R1"))
    again = await provider.refund(refund("R1"))
    assert first.status is RefundStatus.PENDING
    assert again.status is RefundStatus.SUCCEEDED
    assert first.provider_refund_no == again.provider_refund_no is not None
    assert fake.bodies[0] == {
        "out_trade_no": "P0001",
        "out_refund_no": "R1",
        "reason": "行程变更",
        "amount": {"refund": 500, "total": 1280, "currency": "CNY"},
    }
    assert fake.verified == [True, True]


async def test_refund_refusals_fail_and_outages_are_retryable(fake_wechat, make_provider):
    _, url = fake_wechat
    provider = make_provider(base_url=url)
    refused = await provider.refund(refund("R-NOT-ENOUGH"))
    assert refused.status is RefundStatus.FAILED and "NOT_ENOUGH" in (refused.failure or "")
    with pytest.raises(ProviderError) as caught:
        await provider.refund(refund("R-BUSY"))
    assert caught.value.retryable and caught.value.code == "SYSTEM_ERROR"


async def test_query_answers_paid_or_not_found(fake_wechat, make_provider):
    fake, url = fake_wechat
    fake.paid["P0001"] = 1280
    provider = make_provider(base_url=url)
    paid = await provider.query("P0001")
    assert paid.status is PaymentStatus.PAID
    assert (paid.amount_minor, paid.currency) == (1280, "CNY")
    assert paid.provider_trade_no == "4200000985202405011234567890"
    assert (await provider.query("P0404")).status is PaymentStatus.NOT_FOUND
    assert (await provider.query("P_0|1*")).status is PaymentStatus.NOT_FOUND
    assert fake.verified == [True, True, True]


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"answer_key": "stranger"}, "SIGNATURE_INVALID"),
        ({"answer_serial": "PUB_KEY_ID_UNKNOWN"}, "UNKNOWN_KEY"),
        ({"answer_age": 600.0}, "STALE_TIMESTAMP"),
    ],
)
async def test_answers_that_do_not_verify_are_not_trusted(
    keys, fake_wechat, make_provider, tamper: dict[str, Any], code: str
):
    fake, url = fake_wechat
    fake.paid["P0001"] = 1280
    for name, value in tamper.items():
        setattr(fake, name, keys.stranger if value == "stranger" else value)
    with pytest.raises(ProviderError) as caught:
        await make_provider(base_url=url).query("P0001")
    assert caught.value.code == code and caught.value.retryable


async def test_an_unreachable_wechat_pay_is_a_retryable_error(make_provider):
    provider = make_provider(base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProviderError) as caught:
        await provider.refund(refund("R1"))
    assert caught.value.retryable


async def test_the_apiv3_key_must_be_32_bytes(keys):
    with pytest.raises(ValueError, match="32 bytes"):
        WechatPayProvider(
            mchid=MCHID,
            appid=APPID,
            merchant_serial=MERCHANT_SERIAL,
            merchant_private_key=keys.merchant,
            apiv3_key=b"short",
            platform_public_keys={PLATFORM_SERIAL: keys.platform.public_key()},
        )
