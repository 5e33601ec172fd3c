"""Alipay: RSA2 notices verified as Alipay signs them, signed requests, and refunds and queries
against a local server that plays Alipay's gateway and checks our signatures."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
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
from boxoffice.providers.payments.alipay import AlipayProvider
from tests.live_servers import serving
from tests.services import free_port

APP_ID = "2021000000000001"
SELLER_ID = "2088000000000001"
BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class Keys:
    app: RSAPrivateKey  # ours: signs requests
    alipay: RSAPrivateKey  # Alipay's: signs notices and answers
    stranger: RSAPrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    def make() -> RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    return Keys(app=make(), alipay=make(), stranger=make())


def rsa2(key: RSAPrivateKey, content: str) -> str:
    return base64.b64encode(
        key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def rsa2_valid(key: RSAPublicKey, content: str, signature: str) -> bool:
    try:
        key.verify(
            base64.b64decode(signature), content.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        return False
    return True


def beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def notice(
    signer: RSAPrivateKey,
    *,
    now: datetime | None = None,
    drop: tuple[str, ...] = (),
    **overrides: str,
) -> dict[str, str]:
    """A payment notice as Alipay posts it, signed the way its documentation spells out: every
    non-empty parameter but sign and sign_type, sorted, ``k=v`` joined by ``&``."""
    moment = now or utcnow()
    params = {
        "gmt_create": beijing(moment - timedelta(minutes=2)),
        "charset": "utf-8",
        "seller_email": "box***@example.com",
        "subject": "演唱会门票 × 2",
        "buyer_id": "2088102177846875",
        "invoice_amount": "12.80",
        "notify_id": "2024050100222160000012345678",
        "fund_bill_list": '[{"amount":"12.80","fundChannel":"ALIPAYACCOUNT"}]',
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "receipt_amount": "12.80",
        "app_id": APP_ID,
        "buyer_pay_amount": "12.80",
        "sign_type": "RSA2",
        "seller_id": SELLER_ID,
        "gmt_payment": "2024-05-01 20:00:00",
        "notify_time": beijing(moment),
        "passback_params": "",
        "version": "1.0",
        "out_trade_no": "P0001",
        "total_amount": "12.80",
        "trade_no": "2024050122001400001234567890",
        "auth_app_id": APP_ID,
        "buyer_logon_id": "abc***@example.com",
        "point_amount": "0.00",
    }
    params.update(overrides)
    for name in drop:
        params.pop(name, None)
    content = "&".join(
        f"{k}={v}" for k, v in sorted(params.items()) if k not in ("sign", "sign_type") and v
    )
    params["sign"] = rsa2(signer, content)
    return params


def posted(params: dict[str, str]) -> CallbackRequest:
    return CallbackRequest(
        body=urlencode(params).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )


@pytest.fixture
async def make_provider(keys: Keys) -> AsyncIterator[Callable[..., AlipayProvider]]:
    made: list[AlipayProvider] = []

    def make(**overrides: Any) -> AlipayProvider:
        options: dict[str, Any] = {
            "app_id": APP_ID,
            "app_private_key": keys.app,
            "alipay_public_key": keys.alipay.public_key(),
            "seller_id": SELLER_ID,
        }
        options.update(overrides)
        provider = AlipayProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


def rejection(provider: AlipayProvider, request: CallbackRequest) -> RejectReason:
    with pytest.raises(CallbackRejected) as caught:
        provider.verify_callback(request, now=utcnow())
    return caught.value.reason


# -- notices --------------------------------------------------------------------------------


async def test_genuine_notice_verifies_with_exact_amount_merchant_and_outcome(keys, make_provider):
    provider = make_provider()
    verified = provider.verify_callback(posted(notice(keys.alipay)), now=utcnow())
    assert verified.payment_no == "P0001"
    assert verified.provider_trade_no == "2024050122001400001234567890"
    assert verified.outcome is CallbackOutcome.PAID
    assert (verified.amount_minor, verified.currency) == (1280, "CNY")
    assert verified.merchant_id == SELLER_ID
    assert verified.paid_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert verified.raw["subject"] == "演唱会门票 × 2"
    assert verified.event_id == "2024050100222160000012345678"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("TRADE_SUCCESS", CallbackOutcome.PAID),
        ("TRADE_FINISHED", CallbackOutcome.PAID),
        ("TRADE_CLOSED", CallbackOutcome.CLOSED),
        ("WAIT_BUYER_PAY", CallbackOutcome.PENDING),
    ],
)
async def test_trade_status_maps_to_an_outcome(keys, make_provider, status, outcome):
    verified = make_provider().verify_callback(
        posted(notice(keys.alipay, trade_status=status)), now=utcnow()
    )
    assert verified.outcome is outcome


@pytest.mark.parametrize(
    ("amount", "minor"),
    [("12.80", 1280), ("12.8", 1280), ("0.01", 1), ("100", 10000), ("99999.99", 9999999)],
)
async def test_yuan_amounts_become_exact_minor_units(keys, make_provider, amount, minor):
    verified = make_provider().verify_callback(
        posted(notice(keys.alipay, total_amount=amount)), now=utcnow()
    )
    assert verified.amount_minor == minor


@pytest.mark.parametrize("amount", ["12.801", "-1.00", "1e3", "12,80", " 12.80", "0x10", "١٢"])
async def test_amounts_that_are_not_plain_yuan_are_malformed(keys, make_provider, amount):
    assert rejection(make_provider(), posted(notice(keys.alipay, total_amount=amount))) is (
        RejectReason.MALFORMED
    )


def _forged(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.stranger))


def _tampered(keys: Keys) -> CallbackRequest:
    params = notice(keys.alipay)
    params["total_amount"] = "0.01"
    return posted(params)


def _rsa1(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, sign_type="RSA"))


def _stale(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, now=utcnow() - timedelta(hours=26)))


def _from_the_future(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, now=utcnow() + timedelta(minutes=10)))


def _other_app(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, app_id="2021000000009999"))


def _other_seller(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, seller_id="2088000000009999"))


def _unsigned(keys: Keys) -> CallbackRequest:
    params = notice(keys.alipay)
    del params["sign"]
    return posted(params)


def _repeated_parameter(keys: Keys) -> CallbackRequest:
    body = urlencode(notice(keys.alipay)) + "&total_amount=0.01"
    return CallbackRequest(body=body.encode())


def _not_a_form(keys: Keys) -> CallbackRequest:
    return CallbackRequest(body="总额=1".encode())


def _unknown_status(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, trade_status="TRADE_MAYBE"))


def _no_trade_no(keys: Keys) -> CallbackRequest:
    return posted(notice(keys.alipay, drop=("trade_no",)))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_forged, RejectReason.SIGNATURE_INVALID),
        (_tampered, RejectReason.SIGNATURE_INVALID),
        (_rsa1, RejectReason.SIGNATURE_INVALID),
        (_stale, RejectReason.STALE_TIMESTAMP),
        (_from_the_future, RejectReason.STALE_TIMESTAMP),
        (_other_app, RejectReason.MERCHANT_MISMATCH),
        (_other_seller, RejectReason.MERCHANT_MISMATCH),
        (_unsigned, RejectReason.MALFORMED),
        (_repeated_parameter, RejectReason.MALFORMED),
        (_not_a_form, RejectReason.MALFORMED),
        (_unknown_status, RejectReason.MALFORMED),
        (_no_trade_no, RejectReason.MALFORMED),
    ],
)
async def test_notices_that_do_not_prove_themselves_are_rejected_with_their_reason(
    keys, make_provider, make: Callable[[Keys], CallbackRequest], reason: RejectReason
):
    assert rejection(make_provider(), make(keys)) is reason


async def test_a_notice_retried_a_day_later_still_verifies(keys, make_provider):
    late = posted(notice(keys.alipay, now=utcnow() - timedelta(hours=24, minutes=22)))
    assert make_provider().verify_callback(late, now=utcnow()).outcome is CallbackOutcome.PAID


async def test_the_seller_is_not_checked_when_not_configured(keys, make_provider):
    provider = make_provider(seller_id=None)
    other = posted(notice(keys.alipay, seller_id="2088000000009999"))
    assert provider.verify_callback(other, now=utcnow()).merchant_id == "2088000000009999"


async def test_a_gbk_notice_is_decoded_in_its_charset(keys, make_provider):
    params = notice(keys.alipay, charset="gbk")
    body = urlencode(params, encoding="gbk").encode()
    verified = make_provider().verify_callback(CallbackRequest(body=body), now=utcnow())
    assert verified.raw["subject"] == "演唱会门票 × 2"


async def test_acknowledgements_are_alipays_plain_text(make_provider):
    provider = make_provider()
    accepted, rejected = provider.ack(True), provider.ack(False)
    assert (accepted.status_code, accepted.body) == (200, b"success")
    assert rejected.body == b"failure"
    assert accepted.headers["content-type"].startswith("text/plain")


# -- requests -------------------------------------------------------------------------------


def order(
    payment_no: str = "P0001", amount_minor: int = 1280, currency: str = "CNY"
) -> PaymentOrder:
    return PaymentOrder(
        payment_no=payment_no,
        amount_minor=amount_minor,
        currency=currency,
        subject="演唱会门票",
        notify_url="https://box.example.com/payments/alipay/notify",
        return_url="https://box.example.com/orders/1",
        expires_at=datetime(2024, 5, 1, 12, 15, tzinfo=UTC),
    )


def request_is_signed_by(public_key: RSAPublicKey, params: dict[str, str]) -> bool:
    """Alipay's check of a request: every non-empty parameter but sign, sorted."""
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v)
    return rsa2_valid(public_key, content, params["sign"])


async def test_start_signs_a_page_pay_request_alipay_accepts(keys, make_provider):
    provider = make_provider(gateway="https://openapi-sandbox.dl.alipaydev.com/gateway.do")
    started = await provider.start(order())
    url = urlsplit(started.pay_url or "")
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    assert f"{url.scheme}://{url.netloc}{url.path}" == (
        "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
    )
    assert params == started.params
    assert request_is_signed_by(keys.app.public_key(), params)
    assert not request_is_signed_by(keys.stranger.public_key(), params)
    assert params["method"] == "alipay.trade.page.pay"
    assert (params["app_id"], params["sign_type"], params["charset"]) == (APP_ID, "RSA2", "utf-8")
    assert params["notify_url"] == "https://box.example.com/payments/alipay/notify"
    assert json.loads(params["biz_content"]) == {
        "out_trade_no": "P0001",
        "product_code": "FAST_INSTANT_TRADE_PAY",
        "total_amount": "12.80",
        "subject": "演唱会门票",
        "time_expire": "2024-05-01 20:15:00",
    }


async def test_start_refuses_currencies_alipay_does_not_take(make_provider):
    with pytest.raises(ProviderError) as caught:
        await make_provider().start(order(currency="USD"))
    assert caught.value.code == "CURRENCY_UNSUPPORTED" and not caught.value.retryable


@dataclass
class FakeAlipay:
    """Alipay's gateway: checks each request's RSA2 signature with our app public key, answers
    in Alipay's format and signs the exact text of the response node with Alipay's key."""

    app_public_key: RSAPublicKey
    alipay_key: RSAPrivateKey
    answer_key: RSAPrivateKey | None = None  # sign answers with another key (a forgery)
    status_code: int = 200
    requests: list[dict[str, str]] = field(default_factory=list)
    refunds: dict[str, str] = field(default_factory=dict)
    paid: dict[str, str] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/gateway.do", self.gateway, methods=["POST"])])

    def answer(self, method: str, node: dict[str, Any]) -> Response:
        name = (
            "error_response"
            if node.get("code") == "40002"
            else (method.replace(".", "_") + "_response")
        )
        # Alipay's own serialisation, escapes and all: only the raw text verifies
        text = json.dumps(node, ensure_ascii=True).replace("/", "\\/")
        signature = rsa2(self.answer_key or self.alipay_key, text)
        body = f'{{"{name}":{text},"sign":"{signature}"}}'
        return Response(body, status_code=self.status_code, media_type="text/html;charset=utf-8")

    async def gateway(self, request: Request) -> Response:
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        self.requests.append(params)
        method = params.get("method", "")
        if not request_is_signed_by(self.app_public_key, params) or params["app_id"] != APP_ID:
            return self.answer(
                method,
                {"code": "40002", "msg": "Invalid Arguments", "sub_code": "isv.invalid-signature"},
            )
        biz = json.loads(params["biz_content"])
        if method == "alipay.trade.refund":
            return self.refund(method, biz)
        if method == "alipay.trade.fastpay.refund.query":
            known = biz["out_request_no"] in self.refunds
            node = {"code": "10000", "msg": "Success", "out_request_no": biz["out_request_no"]}
            if known:
                node |= {
                    "refund_status": "REFUND_SUCCESS",
                    "refund_amount": self.refunds[biz["out_request_no"]],
                }
            return self.answer(method, node)
        if method == "alipay.trade.query":
            if biz["out_trade_no"] not in self.paid:
                return self.answer(
                    method,
                    {
                        "code": "40004",
                        "msg": "Business Failed",
                        "sub_code": "ACQ.TRADE_NOT_EXIST",
                        "sub_msg": "交易不存在",
                    },
                )
            return self.answer(
                method,
                {
                    "code": "10000",
                    "msg": "Success",
                    "out_trade_no": biz["out_trade_no"],
                    "trade_no": "2024050122001400001234567890",
                    "trade_status": "TRADE_SUCCESS",
                    "total_amount": self.paid[biz["out_trade_no"]],
                    "send_pay_date": "2024-05-01 20:00:00",
                    "buyer_logon_id": "abc***@example.com",
                },
            )
        return self.answer(method, {"code": "40004", "sub_code": "ACQ.INVALID_METHOD"})

    def refund(self, method: str, biz: dict[str, str]) -> Response:
        if biz["out_request_no"] == "R-BUSY":
            return self.answer(
                method,
                {
                    "code": "20000",
                    "msg": "Service Currently Unavailable",
                    "sub_code": "isp.unknow-error",
                },
            )
        if biz["out_request_no"] == "R-NOT-ALLOWED":
            return self.answer(
                method,
                {
                    "code": "40004",
                    "msg": "Business Failed",
                    "sub_code": "ACQ.TRADE_NOT_ALLOW_REFUND",
                    "sub_msg": "交易不允许退款",
                },
            )
        repeated = biz["out_request_no"] in self.refunds
        self.refunds[biz["out_request_no"]] = biz["refund_amount"]
        return self.answer(
            method,
            {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": biz["out_trade_no"],
                "trade_no": "2024050122001400001234567890",
                "buyer_logon_id": "abc***@example.com",
                "fund_change": "N" if repeated else "Y",
                "refund_fee": biz["refund_amount"],
            },
        )


@pytest.fixture
async def fake_alipay(keys: Keys) -> AsyncIterator[tuple[FakeAlipay, str]]:
    fake = FakeAlipay(app_public_key=keys.app.public_key(), alipay_key=keys.alipay)
    async with serving(fake.app()) as server:
        yield fake, f"{server.http_url}/gateway.do"


def refund(refund_no: str, amount_minor: int = 500) -> RefundOrder:
    return RefundOrder(
        payment_no="P0001",
        refund_no=refund_no,
        amount_minor=amount_minor,
        total_minor=1280,
        currency="CNY",
        reason="行程变更",
    )


async def test_refund_is_signed_sent_and_its_signed_answer_verified(fake_alipay, make_provider):
    fake, gateway = fake_alipay
    provider = make_provider(gateway=gateway)
    # when a refund is asked for
    outcome = await provider.refund(refund("R1", 500))
    # then Alipay accepted our signature and we accepted Alipay's
    assert outcome.status is RefundStatus.SUCCEEDED
    assert outcome.raw["refund_fee"] == "5.00"
    sent = fake.requests[-1]
    assert sent["method"] == "alipay.trade.refund"
    assert json.loads(sent["biz_content"]) == {
        "out_trade_no": "P0001",
        "refund_amount": "5.00",
        "out_request_no": "R1",
        "refund_reason": "行程变更",
    }


async def test_a_repeated_refund_is_settled_by_asking_alipay(fake_alipay, make_provider):
    fake, gateway = fake_alipay
    provider = make_provider(gateway=gateway)
    await provider.refund(refund("R1", 500))
    # when the same refund is asked for again (no fund change this time)
    again = await provider.refund(refund("R1", 500))
    # then the refund query confirms it
    assert again.status is RefundStatus.SUCCEEDED
    assert [r["method"] for r in fake.requests] == [
        "alipay.trade.refund",
        "alipay.trade.refund",
        "alipay.trade.fastpay.refund.query",
    ]


async def test_a_refund_alipay_refuses_fails_with_its_reason(fake_alipay, make_provider):
    _, gateway = fake_alipay
    outcome = await make_provider(gateway=gateway).refund(refund("R-NOT-ALLOWED"))
    assert outcome.status is RefundStatus.FAILED
    assert outcome.failure and "ACQ.TRADE_NOT_ALLOW_REFUND" in outcome.failure


async def test_an_unavailable_alipay_is_a_retryable_error(fake_alipay, make_provider):
    fake, gateway = fake_alipay
    provider = make_provider(gateway=gateway)
    with pytest.raises(ProviderError) as busy:
        await provider.refund(refund("R-BUSY"))
    assert busy.value.retryable
    fake.status_code = 502
    with pytest.raises(ProviderError) as down:
        await provider.refund(refund("R2"))
    assert down.value.retryable


async def test_an_answer_not_signed_by_alipay_is_not_trusted(keys, fake_alipay, make_provider):
    fake, gateway = fake_alipay
    fake.answer_key = keys.stranger
    with pytest.raises(ProviderError) as caught:
        await make_provider(gateway=gateway).refund(refund("R1"))
    assert caught.value.code == "SIGNATURE_INVALID" and caught.value.retryable


async def test_a_request_signed_with_the_wrong_app_key_is_refused_by_alipay(
    keys, fake_alipay, make_provider
):
    _, gateway = fake_alipay
    provider = make_provider(gateway=gateway, app_private_key=keys.stranger)
    with pytest.raises(ProviderError) as caught:
        await provider.refund(refund("R1"))
    assert caught.value.code == "isv.invalid-signature" and not caught.value.retryable


async def test_query_answers_paid_or_not_found(fake_alipay, make_provider):
    fake, gateway = fake_alipay
    fake.paid["P0001"] = "12.80"
    provider = make_provider(gateway=gateway)
    paid = await provider.query("P0001")
    assert paid.status is PaymentStatus.PAID
    assert (paid.amount_minor, paid.currency) == (1280, "CNY")
    assert paid.provider_trade_no == "2024050122001400001234567890"
    assert paid.paid_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert (await provider.query("P0404")).status is PaymentStatus.NOT_FOUND


async def test_an_unreachable_gateway_is_a_retryable_error(make_provider):
    provider = make_provider(gateway=f"http://127.0.0.1:{free_port()}/gateway.do")
    with pytest.raises(ProviderError) as caught:
        await provider.query("P0001")
    assert caught.value.retryable
