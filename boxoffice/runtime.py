"""Everything a running process holds: settings, database, backends, providers and keys.

Built once per process (``open_runtime``) by the app's lifespan, the CLI and the tests, and
passed explicitly to services through the resolvers' context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from boxoffice.backends import Backends, open_backends
from boxoffice.config import Settings
from boxoffice.db import Database
from boxoffice.metrics import Metrics
from boxoffice.providers.messaging import SandboxMessaging
from boxoffice.providers.wechat import SandboxWechat, WechatOAuth
from boxoffice.services.access_tokens import AccessTokens
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.passwords import PasswordHasher
from boxoffice.services.queue_tokens import QueueTokens
from boxoffice.services.sign_in import AuthKit
from boxoffice.services.view_counts import ViewCounts


@dataclass
class Runtime:
    settings: Settings
    db: Database
    backends: Backends
    auth: AuthKit
    messaging: SandboxMessaging
    wechat: WechatOAuth
    queue_tokens: QueueTokens
    catalog_cache: CatalogCache
    view_counts: ViewCounts
    metrics: Metrics = field(default_factory=Metrics)
    instance_id: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    extras: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        await self.view_counts.stop()
        await self.catalog_cache.stop()
        await self.backends.close()
        await self.db.dispose()


def make_auth(settings: Settings) -> AuthKit:
    return AuthKit(
        tokens=AccessTokens(
            settings.secrets.jwt_secret,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        hasher=PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        refresh_ttl_seconds=settings.refresh_token_ttl_seconds,
    )


def make_queue_tokens(settings: Settings) -> QueueTokens:
    return QueueTokens(
        settings.secrets.jwt_secret,
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.queue_token_ttl_seconds,
    )


async def open_runtime(settings: Settings) -> Runtime:
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    backends = await open_backends(settings.redis_url)
    catalog_cache = CatalogCache(backends.broker)
    await catalog_cache.start()
    view_counts = ViewCounts(db)
    view_counts.start()
    return Runtime(
        settings=settings,
        db=db,
        backends=backends,
        auth=make_auth(settings),
        messaging=SandboxMessaging(db),
        wechat=SandboxWechat(backends.codes),
        queue_tokens=make_queue_tokens(settings),
        catalog_cache=catalog_cache,
        view_counts=view_counts,
    )
