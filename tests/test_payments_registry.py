"""Which payment providers a process offers, built from settings; the interface's value types."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import boxoffice.providers.payments as payments
from boxoffice.clock import utcnow
from boxoffice.config import Settings
from boxoffice.errors import ConfigurationError
from boxoffice.providers.payments import (
    CallbackOutcome,
    CallbackRejected,
    CallbackRequest,
    PaymentChannel,
    PaymentOrder,
    RefundOrder,
)
from boxoffice.providers.payments.registry import PaymentProviders, build_payment_providers
from boxoffice.providers.payments.sandbox import SandboxProvider, SandboxResult
from tests import conftest


def pem_private(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def pem_public(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def bare_base64_public(key: rsa.RSAPrivateKey) -> str:
    """How Alipay's console shows its public key: base64 DER, no PEM armour."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def rsa_keys() -> list[rsa.RSAPrivateKey]:
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


def full_config(keys: list[rsa.RSAPrivateKey]) -> dict[str, Any]:
    return {
        "alipay_app_id": "2021000000000001",
        "alipay_app_private_key": pem_private(keys[0]),
        "alipay_public_key": bare_base64_public(keys[1]),
        "wechat_pay_mchid": "1900000109",
        "wechat_pay_appid": "wxd678efh567hg6787",
        "wechat_pay_merchant_serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "wechat_pay_private_key": pem_private(keys[2]),
        "wechat_pay_apiv3_key": "0123456789abcdef0123456789abcdef",
        "wechat_pay_platform_public_keys": json.dumps({"PUB_KEY_ID_1": pem_public(keys[1])}),
    }


async def built(settings: Settings, **kwargs: Any) -> PaymentProviders:
    return build_payment_providers(settings, **kwargs)


async def test_only_the_sandbox_is_offered_out_of_the_box(tmp_path: Path):
    providers = await built(conftest.settings_for(tmp_path))
    try:
        assert providers.channels == (PaymentChannel.SANDBOX,)
        assert isinstance(providers.get(PaymentChannel.SANDBOX), SandboxProvider)
        assert providers.get(PaymentChannel.ALIPAY) is None
        assert providers.sandbox_gateway is not None
    finally:
        await providers.aclose()


async def test_the_sandbox_is_off_in_prod_unless_enabled(tmp_path: Path):
    off = await built(conftest.settings_for(tmp_path, env="prod"))
    on = await built(conftest.settings_for(tmp_path, env="prod", sandbox_payments=True))
    try:
        assert off.channels == () and off.sandbox_gateway is None
        assert on.channels == (PaymentChannel.SANDBOX,)
    finally:
        await off.aclose()
        await on.aclose()


async def test_configured_adapters_are_offered(tmp_path: Path, rsa_keys):
    client = httpx.AsyncClient()
    providers = await built(conftest.settings_for(tmp_path, **full_config(rsa_keys)), client=client)
    try:
        assert providers.channels == (
            PaymentChannel.SANDBOX,
            PaymentChannel.ALIPAY,
            PaymentChannel.WECHAT_PAY,
        )
        alipay = providers.get(PaymentChannel.ALIPAY)
        assert alipay is not None and alipay.channel is PaymentChannel.ALIPAY
    finally:
        await providers.aclose()
    # a client passed in belongs to the caller
    assert not client.is_closed
    await client.aclose()


@pytest.mark.parametrize(
    ("dropped", "missing"),
    [
        ("alipay_public_key", "BOXOFFICE_ALIPAY_PUBLIC_KEY"),
        ("alipay_app_private_key", "BOXOFFICE_ALIPAY_APP_PRIVATE_KEY"),
        ("wechat_pay_apiv3_key", "BOXOFFICE_WECHAT_PAY_APIV3_KEY"),
        ("wechat_pay_platform_public_keys", "BOXOFFICE_WECHAT_PAY_PLATFORM_PUBLIC_KEYS"),
    ],
)
async def test_half_a_configuration_refuses_to_start(tmp_path: Path, rsa_keys, dropped, missing):
    config = full_config(rsa_keys)
    del config[dropped]
    with pytest.raises(ConfigurationError, match=missing):
        await built(conftest.settings_for(tmp_path, **config))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("wechat_pay_apiv3_key", "too-short", "BOXOFFICE_WECHAT_PAY_APIV3_KEY must be 32 bytes"),
        ("alipay_public_key", "not a key", "BOXOFFICE_ALIPAY_PUBLIC_KEY"),
        ("wechat_pay_platform_public_keys", "[1]", "must map serials to PEM public keys"),
        ("wechat_pay_platform_public_keys", "{", "is not JSON"),
        (
            "wechat_pay_private_key",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "BOXOFFICE_WECHAT_PAY_PRIVATE_KEY is not a readable RSA private key",
        ),
    ],
)
async def test_unreadable_secrets_refuse_to_start(tmp_path: Path, rsa_keys, field, value, message):
    config = full_config(rsa_keys) | {field: value}
    with pytest.raises(ConfigurationError, match=message):
        await built(conftest.settings_for(tmp_path, **config))


def test_payment_settings_come_from_the_environment(monkeypatch, tmp_path: Path, rsa_keys):
    monkeypatch.setenv(
        "BOXOFFICE_WECHAT_PAY_PLATFORM_PUBLIC_KEYS",
        json.dumps({"SERIAL-1": pem_public(rsa_keys[1])}),
    )
    monkeypatch.setenv("BOXOFFICE_SANDBOX_PAYMENT_RETRY_DELAYS", "[0, 0.5, 1]")
    monkeypatch.setenv(
        "BOXOFFICE_ALIPAY_GATEWAY", "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
    )
    settings = Settings(data_dir=tmp_path)
    hash(settings)  # settings stay hashable (frozen, no mutable fields)
    assert set(json.loads(settings.wechat_pay_platform_public_keys or "")) == {"SERIAL-1"}
    assert settings.sandbox_payment_retry_delays == (0.0, 0.5, 1.0)
    assert settings.alipay_gateway.startswith("https://openapi-sandbox")


async def test_every_process_of_a_deployment_verifies_the_sandbox_of_another(tmp_path: Path):
    # given two processes built from the same settings
    settings = conftest.settings_for(tmp_path)
    first, second = await built(settings), await built(settings)
    try:
        assert first.sandbox_gateway is not None
        body = first.sandbox_gateway.callback_body(
            payment_no="P1", result=SandboxResult.SUCCESS, amount_minor=100, currency="CNY"
        )
        callback = first.sandbox_gateway.sign(body)
        # when the second verifies a callback the first signed
        provider = second.get(PaymentChannel.SANDBOX)
        assert provider is not None
        verified = provider.verify_callback(callback.request(), now=utcnow())
        # then it is genuine
        assert (verified.payment_no, verified.outcome) == ("P1", CallbackOutcome.PAID)
    finally:
        await first.aclose()
        await second.aclose()


async def test_sandbox_callbacks_can_be_delivered_to_an_in_process_app(tmp_path: Path):
    """How the app's tests can wire the sandbox: its callbacks go through an ASGI transport to
    a notify endpoint that verifies and acknowledges them with the same registry."""
    settings = conftest.settings_for(tmp_path)
    holder: dict[str, PaymentProviders] = {}
    seen: list[str] = []

    async def notify(request: Request) -> Response:
        channel = PaymentChannel.from_path(request.path_params["channel"])
        provider = holder["providers"].get(channel) if channel else None
        if provider is None:
            return Response(status_code=404)
        call = CallbackRequest(body=await request.body(), headers=dict(request.headers))
        try:
            seen.append(provider.verify_callback(call, now=utcnow()).payment_no)
            ack = provider.ack(True)
        except CallbackRejected:
            ack = provider.ack(False)
        return Response(ack.body, status_code=ack.status_code, headers=ack.headers)

    app = Starlette(routes=[Route("/payments/{channel}/notify", notify, methods=["POST"])])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
        holder["providers"] = providers = await built(settings, sandbox_client=client)
        assert providers.sandbox_gateway is not None
        delivery = await providers.sandbox_gateway.complete(
            payment_no="P2",
            amount_minor=100,
            currency="CNY",
            notify_url="http://testserver" + PaymentChannel.SANDBOX.notify_path,
            result=SandboxResult.SUCCESS,
        )
        await providers.aclose()
    assert delivery.acknowledged and delivery.attempts == 1
    assert seen == ["P2"]


def test_channels_name_their_url_segment():
    assert PaymentChannel.WECHAT_PAY.path == "wechat_pay"
    assert PaymentChannel.SANDBOX.notify_path == "/payments/sandbox/notify"
    for segment in ("wechat_pay", "wechat-pay", "WECHAT_PAY"):
        assert PaymentChannel.from_path(segment) is PaymentChannel.WECHAT_PAY
    assert PaymentChannel.from_path("paypal") is None


def test_callback_requests_keep_the_raw_body_and_lower_case_headers():
    request = CallbackRequest(body=b"a=1", headers={"Content-Type": "text/plain", "X-A": "1"})
    assert request.headers == {"content-type": "text/plain", "x-a": "1"}
    assert request.content_type == "text/plain"
    assert request.body == b"a=1"


def test_orders_and_refunds_refuse_impossible_amounts():
    with pytest.raises(ValueError, match="positive"):
        PaymentOrder("P1", 0, "CNY", "s", "http://x", utcnow() + timedelta(minutes=1))
    with pytest.raises(ValueError, match="32"):
        PaymentOrder("P" * 33, 100, "CNY", "s", "http://x", utcnow())
    with pytest.raises(ValueError, match="at most"):
        RefundOrder("P1", "R1", amount_minor=101, total_minor=100, currency="CNY")


def test_the_public_surface_is_all():
    exported = {
        name
        for name, value in vars(payments).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == payments.__name__
    }
    assert exported == set(payments.__all__)
