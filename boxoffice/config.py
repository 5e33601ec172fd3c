"""Configuration from ``BOXOFFICE_*`` environment variables.

With nothing set, boxoffice runs embedded: a SQLite file, in-process backends and development
secrets (the JWT secret, the ticket signing seed, the personal-data keys) generated once into
the data folder. In ``prod`` the secrets are required and GraphiQL,
introspection, sandbox payments and the demo page are off unless enabled one by one.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from boxoffice.errors import ConfigurationError
from boxoffice.pii import PiiKeyError, PiiKeys

Environment = Literal["dev", "test", "prod"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore", frozen=True)

    env: Environment = "dev"
    database_url: str = "sqlite+aiosqlite:///./boxoffice.db"
    redis_url: str | None = None
    data_dir: Path = Path(".boxoffice")

    jwt_secret: SecretStr | None = None
    ticket_signing_key: SecretStr | None = None
    # Personal data at rest: "id=base64 key,id=base64 key" (32-byte SecretBox keys), the id
    # new writes use (default: the last listed), and the HMAC key of the lookup hashes.
    pii_keys: SecretStr | None = None
    pii_key_id: str | None = None
    pii_hash_key: SecretStr | None = None
    jwt_issuer: str = "boxoffice"
    jwt_audience: str = "boxoffice-api"
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_token_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=3600)

    allowed_origins: str = ""
    graphiql: bool | None = None
    introspection: bool | None = None
    sandbox_payments: bool | None = None
    demo_page: bool | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    sandbox_merchant_id: str = "boxoffice-sandbox"
    sandbox_payment_retry_delays: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0)

    # Alipay (open platform, RSA2 keys). The adapter is on when app id and both keys are set.
    alipay_app_id: str | None = None
    alipay_app_private_key: SecretStr | None = None  # PEM, or the bare base64 the console shows
    alipay_public_key: str | None = None  # Alipay's public key: PEM or bare base64
    alipay_seller_id: str | None = None  # the merchant's 2088... PID, checked when set
    alipay_gateway: str = "https://openapi.alipay.com/gateway.do"

    # WeChat Pay API v3. The adapter is on when all but the base URL are set.
    wechat_pay_mchid: str | None = None
    wechat_pay_appid: str | None = None
    wechat_pay_merchant_serial: str | None = None  # serial of the merchant API certificate
    wechat_pay_private_key: SecretStr | None = None  # merchant API private key, PEM
    wechat_pay_apiv3_key: SecretStr | None = None  # 32 characters
    # a JSON object: platform certificate serial (or PUB_KEY_ID_...) -> PEM public key
    wechat_pay_platform_public_keys: str | None = None
    wechat_pay_base_url: str = "https://api.mch.weixin.qq.com"

    hold_ttl_seconds: int = Field(default=120, ge=5, le=3600)
    order_ttl_seconds: int = Field(default=900, ge=10, le=24 * 3600)
    # a paid order becomes COMPLETED this many days after its session ended
    order_complete_after_days: int = Field(default=7, ge=0, le=365)
    queue_admit_per_second: int = Field(default=50, ge=1, le=100_000)
    queue_token_ttl_seconds: int = Field(default=150, ge=10, le=180)
    queue_admission_window_seconds: int = Field(default=600, ge=30, le=24 * 3600)
    # the admission ticker's period: 0.2 s lets a 50/s line in 10 at a time, not 50 at once
    # (the flash-sale bench: hold p50 about 100 -> 35 ms); the front still hears once a second
    queue_tick_seconds: float = Field(default=0.2, gt=0, le=60)

    # Webhooks. Outbound requests go only to public addresses unless private ones are allowed
    # (default: allowed in dev and test so a local receiver works, refused in prod).
    webhook_allow_private_addresses: bool | None = None
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    webhook_max_response_bytes: int = Field(default=64 * 1024, ge=1024)
    webhook_concurrency: int = Field(default=8, ge=1, le=256)
    webhook_retry_window_seconds: int = Field(default=3 * 24 * 3600, ge=60)
    webhook_secret_grace_seconds: int = Field(default=24 * 3600, ge=0, le=7 * 24 * 3600)
    webhook_max_endpoints_per_tenant: int = Field(default=20, ge=1)

    # Anonymous event and home pages are answered from a per-process cache for up to this
    # long (live availability refilled on each hit; 0 turns it off). See response_cache.py.
    response_cache_seconds: float = Field(default=2.0, ge=0, le=60)

    max_query_depth: int = Field(default=12, ge=3)
    max_aliases: int = Field(default=30, ge=1)
    max_field_repeats: int = Field(default=10, ge=1)  # one response key in one selection set
    max_fields: int = Field(default=1000, ge=10)  # per operation, fragments expanded
    max_directives_per_node: int = Field(default=4, ge=1)
    max_directives: int = Field(default=50, ge=1)  # per document
    max_tokens: int = Field(default=3000, ge=100)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    ws_init_timeout_seconds: float = Field(default=10.0, gt=0)
    # permessage-deflate: smaller big seat-map snapshots, but CPU on every message to every
    # subscriber (a tenth of a queue update's cost under py-spy); off unless asked for
    ws_compression: bool = False
    max_subscriptions_per_user: int = Field(default=50, ge=1)  # across connections and processes

    # JSON {"operation": [limit, window_seconds(, "per")]} over operation_limits.DEFAULT_LIMITS
    operation_limits: str = ""

    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=1024)
    argon2_parallelism: int = Field(default=4, ge=1)

    otel_enabled: bool = False
    otel_exporter: Literal["otlp", "console"] = "otlp"
    otel_endpoint: str | None = None
    otel_service_name: str = "boxoffice"

    db_pool_size: int = Field(default=20, ge=1)
    run_background_jobs: bool = True
    log_level: str = "INFO"
    log_json: bool = True

    @property
    def is_prod(self) -> bool:
        return self.env == "prod"

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.is_prod

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.is_prod

    @property
    def sandbox_payments_enabled(self) -> bool:
        return self.sandbox_payments if self.sandbox_payments is not None else not self.is_prod

    @property
    def demo_page_enabled(self) -> bool:
        """The live seat map page at ``/demo`` (on in dev and test, off in prod unless set)."""
        return self.demo_page if self.demo_page is not None else not self.is_prod

    @property
    def webhook_private_addresses_allowed(self) -> bool:
        if self.webhook_allow_private_addresses is not None:
            return self.webhook_allow_private_addresses
        return not self.is_prod

    @property
    def origins(self) -> tuple[str, ...]:
        """Browser origins allowed for CORS and WebSocket handshakes (``*`` in dev when unset)."""
        listed = tuple(o.strip() for o in self.allowed_origins.split(",") if o.strip())
        if listed:
            return listed
        return () if self.is_prod else ("*",)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @cached_property
    def secrets(self) -> Secrets:
        return load_secrets(self)


@dataclass(frozen=True)
class Secrets:
    jwt_secret: bytes
    ticket_signing_seed: bytes  # 32-byte Ed25519 seed
    pii: PiiKeys


def _b64decode(raw: str, name: str) -> bytes:
    text = raw.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except ValueError as exc:
        raise ConfigurationError(f"{name} is not base64") from exc


def _decode_seed(raw: str) -> bytes:
    seed = _b64decode(raw, "BOXOFFICE_TICKET_SIGNING_KEY")
    if len(seed) != 32:
        raise ConfigurationError("BOXOFFICE_TICKET_SIGNING_KEY must be a base64 32-byte seed")
    return seed


def parse_pii_keys(keys_raw: str, key_id: str | None, hash_raw: str) -> PiiKeys:
    """``BOXOFFICE_PII_KEYS`` ("id=base64,id=base64"), ``BOXOFFICE_PII_KEY_ID`` (default: the
    last listed) and ``BOXOFFICE_PII_HASH_KEY``. Raises ``ConfigurationError``."""
    keys: dict[str, bytes] = {}
    for part in (p.strip() for p in keys_raw.split(",")):
        if not part:
            continue
        kid, sep, encoded = part.partition("=")
        if not sep or not kid.strip():
            raise ConfigurationError("BOXOFFICE_PII_KEYS is 'id=base64key,id=base64key'")
        keys[kid.strip()] = _b64decode(encoded, f"BOXOFFICE_PII_KEYS ({kid.strip()})")
    if not keys:
        raise ConfigurationError("BOXOFFICE_PII_KEYS names no key")
    try:
        return PiiKeys(
            keys=keys,
            current=key_id or list(keys)[-1],
            hash_key=_b64decode(hash_raw, "BOXOFFICE_PII_HASH_KEY"),
        )
    except PiiKeyError as exc:
        raise ConfigurationError(str(exc)) from exc


def _kept_secret(path: Path, make: bytes) -> str:
    """Read a development secret from the data folder, creating it (mode 0600) the first time."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = base64.b64encode(make).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_secrets(settings: Settings) -> Secrets:
    """Secrets from the environment; in dev and test, generated once and kept in ``data_dir``.

    Raises ``ConfigurationError`` in ``prod`` when one is missing or too weak.
    """
    jwt_raw = settings.jwt_secret.get_secret_value() if settings.jwt_secret else None
    seed_raw = (
        settings.ticket_signing_key.get_secret_value() if settings.ticket_signing_key else None
    )
    pii_raw = settings.pii_keys.get_secret_value() if settings.pii_keys else None
    pii_hash_raw = settings.pii_hash_key.get_secret_value() if settings.pii_hash_key else None
    if settings.is_prod:
        missing = [
            name
            for name, value in (
                ("BOXOFFICE_JWT_SECRET", jwt_raw),
                ("BOXOFFICE_TICKET_SIGNING_KEY", seed_raw),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} required when BOXOFFICE_ENV=prod")
        assert jwt_raw is not None
        if len(jwt_raw.encode()) < 32:
            raise ConfigurationError("BOXOFFICE_JWT_SECRET must be at least 32 bytes")
        missing = [
            name
            for name, value in (
                ("BOXOFFICE_PII_KEYS", pii_raw),
                ("BOXOFFICE_PII_HASH_KEY", pii_hash_raw),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(f"{', '.join(missing)} required when BOXOFFICE_ENV=prod")
    if not jwt_raw:
        jwt_raw = _kept_secret(settings.data_dir / "jwt_secret", secrets.token_bytes(48))
    if not seed_raw:
        seed_raw = _kept_secret(settings.data_dir / "ticket_signing_key", secrets.token_bytes(32))
    if not pii_raw:
        dev_key = _kept_secret(settings.data_dir / "pii_key_dev1", secrets.token_bytes(32))
        pii_raw = f"dev1={dev_key}"
    if not pii_hash_raw:
        pii_hash_raw = _kept_secret(settings.data_dir / "pii_hash_key", secrets.token_bytes(32))
    return Secrets(
        jwt_secret=jwt_raw.encode(),
        ticket_signing_seed=_decode_seed(seed_raw),
        pii=parse_pii_keys(pii_raw, settings.pii_key_id, pii_hash_raw),
    )
