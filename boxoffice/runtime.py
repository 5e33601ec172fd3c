"""Everything a running process holds: settings, database, backends, providers and keys.

Built once per process (``open_runtime``) by the app's lifespan, the CLI and the tests, and
passed explicitly to services through the resolvers' context.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx

from boxoffice import pii
from boxoffice.backends import Backends, open_backends
from boxoffice.backends.seat_ledger import Snapshot
from boxoffice.config import Settings
from boxoffice.db import Database
from boxoffice.metrics import Metrics
from boxoffice.pii import PiiCipher
from boxoffice.providers.messaging import SandboxMessaging
from boxoffice.providers.payments.registry import PaymentProviders, build_payment_providers
from boxoffice.providers.wechat import SandboxWechat, WechatOAuth
from boxoffice.response_cache import ResponseCache
from boxoffice.services import (  # noqa: F401 - these install their hooks at import
    coupon_redemption,
    event_refunds,
    inventory,
    operation_limits,
    waitlist_offers,
)
from boxoffice.services.access_tokens import AccessTokens
from boxoffice.services.availability_feed import AvailabilityFeeds
from boxoffice.services.catalog_cache import CatalogCache
from boxoffice.services.inventory import SoldOutFlags
from boxoffice.services.live_users import LiveUsers
from boxoffice.services.operation_limits import DEFAULT_LIMITS, OperationLimit
from boxoffice.services.orders import OrderDeps
from boxoffice.services.passwords import PasswordHasher
from boxoffice.services.payments import PaymentDeps
from boxoffice.services.queue_events import QueueEventCache
from boxoffice.services.queue_tokens import QueueTokens
from boxoffice.services.refund_processing import RefundDeps
from boxoffice.services.session_rules import SessionRulesCache
from boxoffice.services.sign_in import AuthKit
from boxoffice.services.ticket_keys import TicketKeys
from boxoffice.services.tickets import TicketDeps
from boxoffice.services.view_counts import ViewCounts
from boxoffice.tracing import configure_tracing


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
    session_rules: SessionRulesCache
    availability_feeds: AvailabilityFeeds
    sold_out: SoldOutFlags
    payments: PaymentProviders
    queue_events: QueueEventCache
    ticket_keys: TicketKeys
    responses: ResponseCache
    metrics: Metrics = field(default_factory=Metrics)
    live_users: LiveUsers = field(default_factory=LiveUsers)
    instance_id: str = field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def operation_limits(self) -> dict[str, OperationLimit]:
        """``operation_limits.DEFAULT_LIMITS`` with ``BOXOFFICE_OPERATION_LIMITS`` over it."""
        return {
            **DEFAULT_LIMITS,
            **operation_limits.parse_overrides(self.settings.operation_limits),
        }

    @property
    def order_deps(self) -> OrderDeps:
        return OrderDeps(
            db=self.db,
            ledger=self.backends.ledger,
            rules=self.session_rules,
            broker=self.backends.broker,
            order_ttl_seconds=self.settings.order_ttl_seconds,
        )

    @property
    def payment_deps(self) -> PaymentDeps:
        return PaymentDeps(
            orders=self.order_deps,
            providers=self.payments,
            public_base_url=self.settings.public_base_url,
        )

    @property
    def refund_deps(self) -> RefundDeps:
        return RefundDeps(orders=self.order_deps, providers=self.payments)

    @property
    def ticket_deps(self) -> TicketDeps:
        return TicketDeps(db=self.db, keys=self.ticket_keys)

    async def close(self) -> None:
        await self.sold_out.close()
        await self.availability_feeds.close()
        await self.payments.aclose()
        await self.view_counts.stop()
        await self.catalog_cache.stop()
        await self.live_users.settled()
        await self.session_rules.settled()
        await self.backends.close()
        await self.db.dispose()


def install_pii(settings: Settings) -> PiiCipher:
    """Install the process's personal-data cipher from the configured keys."""
    cipher = PiiCipher(settings.secrets.pii)
    pii.install(cipher)
    return cipher


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


async def open_runtime(
    settings: Settings, *, sandbox_client: httpx.AsyncClient | None = None
) -> Runtime:
    """Open everything a process needs. ``sandbox_client`` is the HTTP client the sandbox
    payment company delivers callbacks with (tests route it into the app in-process)."""
    install_pii(settings)
    db = Database(settings.database_url, pool_size=settings.db_pool_size)
    configure_tracing(settings, db)
    backends = await open_backends(settings.redis_url)
    catalog_cache = CatalogCache(backends.broker)
    await catalog_cache.start()
    session_rules = SessionRulesCache(db)
    catalog_cache.follow(
        lambda events: (
            session_rules.clear() if events is None else session_rules.drop_events(events)
        )
    )

    async def load_snapshot(session_id: str) -> Snapshot:
        return await inventory.snapshot(
            db=db, ledger=backends.ledger, rules_cache=session_rules, session_id=session_id
        )

    feeds = AvailabilityFeeds(backends.broker, load_snapshot, is_loaded=backends.ledger.is_loaded)

    async def reshape(session_ids: set[str]) -> None:
        """A session's tiers or seats changed: rebuild its ledger (if it has one) from the
        database. Holds not yet turned into orders are dropped; orders are kept."""
        for session_id in session_ids:
            session_rules.drop(session_id)
            if await backends.ledger.is_loaded(session_id):
                rules = await session_rules.get(session_id)
                await inventory.load_ledger(db=db, ledger=backends.ledger, rules=rules, force=True)

    catalog_cache.follow_sessions(reshape)
    queue_events = QueueEventCache(db)
    catalog_cache.follow(queue_events.follow)
    view_counts = ViewCounts(db)
    view_counts.start()
    responses = ResponseCache(settings.response_cache_seconds)
    catalog_cache.follow(responses.clear)
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
        session_rules=session_rules,
        availability_feeds=feeds,
        sold_out=SoldOutFlags(feeds),
        payments=build_payment_providers(settings, sandbox_client=sandbox_client),
        queue_events=queue_events,
        ticket_keys=TicketKeys(db, settings.secrets.ticket_signing_seed),
        responses=responses,
    )
