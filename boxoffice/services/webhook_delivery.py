"""Delivering outbox events to webhook endpoints, in two stages so that one failing endpoint
never delays another.

1. Fan-out: the outbox consumer ``webhooks`` turns each event into one delivery row per
   ACTIVE endpoint subscribed to its topic (the tenant's endpoints and the platform-wide ones).
   Rows are unique per endpoint and event, so running an event again adds nothing.
2. Sending: ``WebhookSender`` (a periodic job, under a lease) runs one task per endpoint that
   has due deliveries, at most ``webhook_concurrency`` at once. A task sends its endpoint's
   due deliveries one at a time, oldest first, and stops at the first failure: that endpoint
   backs off (30 s, doubling, up to an hour) while the others carry on. The failed delivery is
   retried with exponential backoff (30 s, doubling, up to 6 h) until its retry window (3 days
   by default) closes, then it is FAILED. An endpoint answering 410 Gone is disabled.

Every request is one attempt row (status code, error, duration, the start of the body).
Delivery is at least once: a receiver deduplicates on ``Boxoffice-Event-Id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlmodel import col, func, select

from boxoffice.clock import utcnow
from boxoffice.models.outbox import OutboxEvent
from boxoffice.models.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookStatus,
)
from boxoffice.providers.webhook_http import HttpOutcome, post
from boxoffice.services.outbox import Consumer
from boxoffice.services.webhook_signatures import sign
from boxoffice.services.webhook_targets import TargetRefused, resolve_target
from boxoffice.services.webhooks import WEBHOOK_TOPICS, subscribes_to, valid_secrets

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.webhooks")

FANOUT_CONSUMER = "webhooks"
FIRST_BACKOFF_SECONDS = 30.0
DELIVERY_BACKOFF_CAP_SECONDS = 6 * 3600.0
ENDPOINT_BACKOFF_CAP_SECONDS = 3600.0
MAX_DELIVERIES_PER_TASK = 100
GONE = 410


def delivery_backoff(attempts: int) -> float:
    """Seconds before retrying a delivery that failed ``attempts`` times."""
    return min(DELIVERY_BACKOFF_CAP_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, attempts - 1))


def endpoint_backoff(failures: int) -> float:
    """Seconds an endpoint rests after ``failures`` failed requests in a row."""
    return min(ENDPOINT_BACKOFF_CAP_SECONDS, FIRST_BACKOFF_SECONDS * 2 ** max(0, failures - 1))


async def fan_out(rt: Runtime, event: OutboxEvent, *, now: datetime | None = None) -> int:
    """Add a delivery of ``event`` for each subscribed endpoint that has none; return how many.
    Endpoints created after the event do not receive it."""
    assert event.seq is not None
    now = now or utcnow()
    owners: Any = col(WebhookEndpoint.tenant_id).is_(None)
    if event.tenant_id is not None:
        owners = owners | (col(WebhookEndpoint.tenant_id) == event.tenant_id)
    async with rt.db.write() as session:
        endpoints = (
            await session.exec(
                select(WebhookEndpoint).where(
                    owners,
                    col(WebhookEndpoint.status) == WebhookStatus.ACTIVE,
                    col(WebhookEndpoint.created_at) <= event.created_at,
                )
            )
        ).all()
        wanted = [e for e in endpoints if subscribes_to(e, event.topic)]
        if not wanted:
            return 0
        existing = set(
            (
                await session.exec(
                    select(WebhookDelivery.webhook_id).where(
                        WebhookDelivery.event_id == event.event_id
                    )
                )
            ).all()
        )
        window = timedelta(seconds=rt.settings.webhook_retry_window_seconds)
        added = 0
        for endpoint in wanted:
            if endpoint.id in existing:
                continue
            session.add(
                WebhookDelivery(
                    webhook_id=endpoint.id,
                    event_seq=event.seq,
                    event_id=event.event_id,
                    topic=event.topic,
                    next_attempt_at=now,
                    give_up_at=now + window,
                )
            )
            added += 1
    return added


def fanout_consumer() -> Consumer:
    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        await fan_out(rt, event)

    return Consumer(FANOUT_CONSUMER, handle, topics=frozenset(WEBHOOK_TOPICS))


def event_body(event: OutboxEvent) -> bytes:
    """The JSON body every endpoint receives for ``event``."""
    payload: Mapping[str, Any] = event.payload if isinstance(event.payload, Mapping) else {}
    return orjson.dumps(
        {
            "id": event.event_id,
            "type": event.topic,
            "createdAt": event.created_at.astimezone(UTC).isoformat(),
            "tenantId": event.tenant_id,
            "data": payload.get("resource"),
        }
    )


async def attempt(rt: Runtime, delivery_id: str, *, now: datetime | None = None) -> bool:
    """Send one delivery once, record the attempt and schedule what follows; True when the
    endpoint accepted it. ``now`` drives scheduling only: signatures carry the real time."""
    now = now or utcnow()
    async with rt.db.read() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != WebhookDeliveryStatus.PENDING:
            return False
        endpoint = await session.get(WebhookEndpoint, delivery.webhook_id)
        if endpoint is None or endpoint.status != WebhookStatus.ACTIVE:
            return False
        event = await session.get(OutboxEvent, delivery.event_seq)
        secrets = await valid_secrets(session, endpoint.id, utcnow())
    if event is None:
        return False
    settings = rt.settings
    body = event_body(event)
    try:
        if not secrets:
            raise TargetRefused("the endpoint has no valid signing secret")
        target = await resolve_target(
            endpoint.url, allow_private=settings.webhook_private_addresses_allowed
        )
        outcome = await post(
            target,
            body=body,
            headers={
                "Boxoffice-Signature": sign(body, secrets),
                "Boxoffice-Event-Id": event.event_id,
                "Boxoffice-Event-Type": event.topic,
                "Boxoffice-Delivery-Id": delivery.id,
            },
            timeout_seconds=settings.webhook_timeout_seconds,
            max_bytes=settings.webhook_max_response_bytes,
        )
    except TargetRefused as exc:
        outcome = HttpOutcome(status_code=None, error=f"refused: {exc}", duration_ms=0, body=None)
    await _record(rt, delivery.id, endpoint.url, outcome, now)
    return outcome.succeeded


async def _record(
    rt: Runtime, delivery_id: str, url: str, outcome: HttpOutcome, now: datetime
) -> None:
    async with rt.db.write() as session:
        delivery = await session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:  # the endpoint was deleted meanwhile
            return
        endpoint = await session.get(WebhookEndpoint, delivery.webhook_id, with_for_update=True)
        if endpoint is None:
            return
        error = None if outcome.succeeded else (outcome.error or f"HTTP {outcome.status_code}")
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                webhook_id=endpoint.id,
                url=url[:500],
                succeeded=outcome.succeeded,
                status_code=outcome.status_code,
                error=error[:500] if error else None,
                duration_ms=outcome.duration_ms,
                response_body=outcome.body,
                attempted_at=now,
            )
        )
        delivery.attempts += 1
        delivery.last_status_code = outcome.status_code
        delivery.last_error = error[:500] if error else None
        delivery.updated_at = now
        if outcome.succeeded:
            delivery.status, delivery.delivered_at = WebhookDeliveryStatus.SUCCEEDED, now
            delivery.next_attempt_at = None
            endpoint.consecutive_failures, endpoint.retry_at = 0, None
        elif outcome.status_code == GONE:
            delivery.status, delivery.next_attempt_at = WebhookDeliveryStatus.FAILED, None
            endpoint.status = WebhookStatus.DISABLED
            endpoint.disabled_reason = "the endpoint answered 410 Gone"
            endpoint.updated_at = now
            log.info("webhook %s disabled: it answered 410 Gone", endpoint.id)
        else:
            retry = now + timedelta(seconds=delivery_backoff(delivery.attempts))
            if delivery.give_up_at is not None and retry > delivery.give_up_at:
                delivery.status, delivery.next_attempt_at = WebhookDeliveryStatus.FAILED, None
            else:
                delivery.next_attempt_at = retry
            endpoint.consecutive_failures += 1
            endpoint.retry_at = now + timedelta(
                seconds=endpoint_backoff(endpoint.consecutive_failures)
            )
        session.add(delivery)
        session.add(endpoint)


def _due(now: datetime) -> list[Any]:
    return [
        col(WebhookDelivery.status) == WebhookDeliveryStatus.PENDING,
        col(WebhookDelivery.next_attempt_at) <= now,
        col(WebhookEndpoint.status) == WebhookStatus.ACTIVE,
        col(WebhookEndpoint.retry_at).is_(None) | (col(WebhookEndpoint.retry_at) <= now),
    ]


class WebhookSender:
    """Runs the sending stage: ``tick`` (the periodic job) starts a task per endpoint with due
    deliveries and returns at once; the tasks outlive the tick, so a slow endpoint holds only
    its own task. ``run_until_idle`` (tests, one-off runs) also waits for them."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._running: dict[str, asyncio.Task[None]] = {}

    @property
    def running(self) -> int:
        return sum(1 for task in self._running.values() if not task.done())

    async def tick(self, *, now: datetime | None = None) -> int:
        """Start tasks for endpoints with due deliveries; return how many started."""
        self._running = {k: t for k, t in self._running.items() if not t.done()}
        room = self.rt.settings.webhook_concurrency - len(self._running)
        if room <= 0:
            return 0
        moment = now or utcnow()
        async with self.rt.db.read() as session:
            rows = await session.exec(
                select(WebhookDelivery.webhook_id)
                .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.webhook_id))
                .where(*_due(moment))
                .group_by(col(WebhookDelivery.webhook_id))
                .order_by(func.min(WebhookDelivery.next_attempt_at))
                .limit(room + len(self._running))
            )
            endpoint_ids = list(rows.all())
        started = 0
        for endpoint_id in endpoint_ids:
            if started >= room:
                break
            if endpoint_id in self._running:
                continue
            self._running[endpoint_id] = asyncio.create_task(
                self._drain(endpoint_id, now), name=f"webhook:{endpoint_id}"
            )
            started += 1
        return started

    async def run_until_idle(self, *, now: datetime | None = None) -> None:
        await self.tick(now=now)
        while tasks := [t for t in self._running.values() if not t.done()]:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        for task in self._running.values():
            task.cancel()
        for task in self._running.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._running.clear()

    async def _drain(self, endpoint_id: str, now: datetime | None) -> None:
        try:
            for _ in range(MAX_DELIVERIES_PER_TASK):
                moment = now or utcnow()
                async with self.rt.db.read() as session:
                    delivery_id = (
                        await session.exec(
                            select(WebhookDelivery.id)
                            .join(
                                WebhookEndpoint,
                                col(WebhookEndpoint.id) == col(WebhookDelivery.webhook_id),
                            )
                            .where(WebhookDelivery.webhook_id == endpoint_id, *_due(moment))
                            .order_by(
                                col(WebhookDelivery.next_attempt_at),
                                col(WebhookDelivery.created_at),
                                col(WebhookDelivery.id),
                            )
                            .limit(1)
                        )
                    ).first()
                if delivery_id is None or not await attempt(self.rt, delivery_id, now=moment):
                    return
        except Exception:
            log.exception("webhook sender failed on endpoint %s", endpoint_id)


def sender_for(rt: Runtime) -> WebhookSender:
    """The process's sender (kept on the runtime so its tasks survive between ticks)."""
    sender = rt.extras.get("webhook_sender")
    if not isinstance(sender, WebhookSender):
        sender = rt.extras["webhook_sender"] = WebhookSender(rt)
    return sender
