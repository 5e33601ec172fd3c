"""The payment providers a process offers, built from settings.

SANDBOX is on when ``settings.sandbox_payments_enabled``; ALIPAY and WECHAT_PAY when their
settings are complete. Half a configuration is a ``ConfigurationError`` at start-up rather than
a channel that silently does not exist.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import httpx

from boxoffice.config import Settings
from boxoffice.errors import ConfigurationError
from boxoffice.providers.payments import PaymentChannel, PaymentProvider
from boxoffice.providers.payments import rsa_signatures as rsa
from boxoffice.providers.payments.alipay import AlipayProvider
from boxoffice.providers.payments.sandbox import (
    SandboxGateway,
    SandboxProvider,
    sandbox_signing_key,
)
from boxoffice.providers.payments.wechat_pay import WechatPayProvider


class PaymentProviders:
    """The enabled providers by channel, and the sandbox gateway when the sandbox is on."""

    def __init__(
        self,
        providers: Iterable[PaymentProvider],
        *,
        sandbox_gateway: SandboxGateway | None = None,
        owned_clients: Iterable[httpx.AsyncClient] = (),
    ) -> None:
        self._providers = {provider.channel: provider for provider in providers}
        self.sandbox_gateway = sandbox_gateway
        self._owned_clients = tuple(owned_clients)

    @property
    def channels(self) -> tuple[PaymentChannel, ...]:
        return tuple(channel for channel in PaymentChannel if channel in self._providers)

    def get(self, channel: PaymentChannel) -> PaymentProvider | None:
        """The provider of ``channel``, or None when it is not enabled here."""
        return self._providers.get(channel)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        for client in self._owned_clients:
            await client.aclose()


def _missing(**values: object) -> str:
    return ", ".join(f"BOXOFFICE_{name.upper()}" for name, value in values.items() if not value)


def _alipay(settings: Settings, client: Callable[[], httpx.AsyncClient]) -> AlipayProvider | None:
    app_id, public_key = settings.alipay_app_id, settings.alipay_public_key
    private_key = settings.alipay_app_private_key
    if not (app_id or private_key or public_key):
        return None
    if not (app_id and private_key and public_key):
        missing = _missing(
            alipay_app_id=app_id, alipay_app_private_key=private_key, alipay_public_key=public_key
        )
        raise ConfigurationError(f"Alipay is half configured: {missing} missing")
    return AlipayProvider(
        app_id=app_id,
        app_private_key=rsa.load_private_key(
            private_key.get_secret_value(), name="BOXOFFICE_ALIPAY_APP_PRIVATE_KEY"
        ),
        alipay_public_key=rsa.load_public_key(public_key, name="BOXOFFICE_ALIPAY_PUBLIC_KEY"),
        seller_id=settings.alipay_seller_id,
        gateway=settings.alipay_gateway,
        client=client(),
    )


def _platform_keys(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    try:
        keys = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError("BOXOFFICE_WECHAT_PAY_PLATFORM_PUBLIC_KEYS is not JSON") from exc
    if not isinstance(keys, dict) or not all(
        isinstance(serial, str) and isinstance(pem, str) for serial, pem in keys.items()
    ):
        raise ConfigurationError(
            "BOXOFFICE_WECHAT_PAY_PLATFORM_PUBLIC_KEYS must map serials to PEM public keys"
        )
    return keys


def _wechat_pay(
    settings: Settings, client: Callable[[], httpx.AsyncClient]
) -> WechatPayProvider | None:
    mchid, appid = settings.wechat_pay_mchid, settings.wechat_pay_appid
    serial = settings.wechat_pay_merchant_serial
    platform_keys = _platform_keys(settings.wechat_pay_platform_public_keys)
    private_key, apiv3_key = settings.wechat_pay_private_key, settings.wechat_pay_apiv3_key
    if not (mchid or appid or serial or private_key or apiv3_key or platform_keys):
        return None
    if not (mchid and appid and serial and private_key and apiv3_key and platform_keys):
        missing = _missing(
            wechat_pay_mchid=mchid,
            wechat_pay_appid=appid,
            wechat_pay_merchant_serial=serial,
            wechat_pay_private_key=private_key,
            wechat_pay_apiv3_key=apiv3_key,
            wechat_pay_platform_public_keys=platform_keys,
        )
        raise ConfigurationError(f"WeChat Pay is half configured: {missing} missing")
    key = apiv3_key.get_secret_value().encode()
    if len(key) != 32:
        raise ConfigurationError("BOXOFFICE_WECHAT_PAY_APIV3_KEY must be 32 bytes")
    return WechatPayProvider(
        mchid=mchid,
        appid=appid,
        merchant_serial=serial,
        merchant_private_key=rsa.load_private_key(
            private_key.get_secret_value(), name="BOXOFFICE_WECHAT_PAY_PRIVATE_KEY"
        ),
        apiv3_key=key,
        platform_public_keys={
            key_serial: rsa.load_public_key(
                pem, name=f"BOXOFFICE_WECHAT_PAY_PLATFORM_PUBLIC_KEYS[{key_serial}]"
            )
            for key_serial, pem in platform_keys.items()
        },
        base_url=settings.wechat_pay_base_url,
        client=client(),
    )


def build_payment_providers(
    settings: Settings,
    *,
    client: httpx.AsyncClient | None = None,
    sandbox_client: httpx.AsyncClient | None = None,
) -> PaymentProviders:
    """The configured providers. ``client`` carries calls to Alipay and WeChat Pay and
    ``sandbox_client`` the sandbox's callbacks (tests may pass one on an ASGI transport);
    clients made here are closed by ``PaymentProviders.aclose``.

    Raises ``ConfigurationError`` for a half or unreadable configuration.
    """
    owned: list[httpx.AsyncClient] = []

    def outbound() -> httpx.AsyncClient:
        if client is not None:
            return client
        if not owned:
            owned.append(httpx.AsyncClient(timeout=10.0))
        return owned[0]

    providers: list[PaymentProvider] = []
    for build in (_alipay, _wechat_pay):
        provider = build(settings, outbound)
        if provider is not None:
            providers.append(provider)
    gateway = None
    if settings.sandbox_payments_enabled:
        callbacks = sandbox_client or httpx.AsyncClient(timeout=5.0)
        if sandbox_client is None:
            owned.append(callbacks)
        gateway = SandboxGateway(
            sandbox_signing_key(settings.secrets.jwt_secret),
            merchant_id=settings.sandbox_merchant_id,
            retry_delays=settings.sandbox_payment_retry_delays,
            client=callbacks,
        )
        providers.insert(0, SandboxProvider(gateway, base_url=settings.public_base_url))
    return PaymentProviders(providers, sandbox_gateway=gateway, owned_clients=owned)
