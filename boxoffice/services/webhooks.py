"""Webhook endpoints: organizers manage their tenant's, operators any and the platform-wide
ones (``tenant_id`` NULL: they receive every tenant's events). Another tenant's endpoint or
delivery answers NOT_FOUND.

The signing secret is returned once, when it is made (creation, rotation). Rotating keeps the
previous secrets valid for a grace period, during which deliveries carry a signature per
secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput, Forbidden, NotFound
from boxoffice.models.identity import Role, Tenant
from boxoffice.models.webhooks import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookSecret,
    WebhookStatus,
)
from boxoffice.services import audit, validation
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer
from boxoffice.services.webhook_signatures import new_secret
from boxoffice.services.webhook_targets import check_url

WEBHOOK_TOPICS: tuple[str, ...] = (
    "order.created",
    "order.paid",
    "order.cancelled",
    "order.expired",
    "refund.requested",
    "refund.completed",
    "ticket.issued",
    "ticket.revoked",
    "ticket.checked_in",
    "waitlist.offered",
    "event.published",
    "event.cancelled",
    "session.sold_out",
)
ALL_EVENTS = "*"
MAX_GRACE_SECONDS = 7 * 24 * 3600
AUDITED_FIELDS = ("tenant_id", "url", "events", "description", "status")

DELIVERY_KEYS: list[SortKey[WebhookDelivery]] = [
    SortKey(col(WebhookDelivery.created_at), lambda d: d.created_at, "datetime", descending=True),
    SortKey(col(WebhookDelivery.id), lambda d: d.id, descending=True),
]


@dataclass(frozen=True)
class CreatedWebhook:
    endpoint: WebhookEndpoint
    secret: str


@dataclass(frozen=True)
class RotatedSecret:
    endpoint: WebhookEndpoint
    secret: str
    previous_expires_at: datetime | None  # None when there was no previous secret


def subscribes_to(endpoint: WebhookEndpoint, topic: str) -> bool:
    return ALL_EVENTS in endpoint.events or topic in endpoint.events


def _events(values: Sequence[str], *, field: str = "events") -> list[str]:
    cleaned = {v.strip() for v in values}
    if not cleaned:
        raise BadUserInput("Subscribe to at least one event type.", field=field)
    unknown = sorted(cleaned - {*WEBHOOK_TOPICS, ALL_EVENTS})
    if unknown:
        raise BadUserInput(
            f"Unknown event types: {', '.join(unknown)}; known: {', '.join(WEBHOOK_TOPICS)} "
            f"or {ALL_EVENTS}.",
            field=field,
        )
    return [ALL_EVENTS] if ALL_EVENTS in cleaned else sorted(cleaned)


def _may_manage(viewer: Viewer) -> None:
    viewer.require_role(Role.ORGANIZER, Role.OPERATOR)


def _in_scope(viewer: Viewer, tenant_id: str | None) -> bool:
    if viewer.is_operator:
        return True
    return tenant_id is not None and viewer.can_staff(tenant_id, Role.ORGANIZER)


async def _owner_tenant(session: AsyncSession, viewer: Viewer, tenant_id: str | None) -> str | None:
    """The tenant a new endpoint belongs to: the given one, or the organizer's only tenant,
    or (operators) the platform."""
    if tenant_id:
        viewer.require_staff(tenant_id, Role.ORGANIZER)
        if await session.get(Tenant, tenant_id) is None:
            raise NotFound("No such tenant.")
        return tenant_id
    if viewer.is_operator:
        return None
    mine = viewer.tenants_with(Role.ORGANIZER)
    if len(mine) == 1:
        return next(iter(mine))
    if not mine:
        raise Forbidden()
    raise BadUserInput("You work for several tenants: say which.", field="tenantId")


async def _endpoint(session: AsyncSession, viewer: Viewer, webhook_id: str) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, webhook_id)
    if endpoint is None or not _in_scope(viewer, endpoint.tenant_id):
        raise NotFound("No such webhook.")
    return endpoint


async def valid_secrets(session: AsyncSession, webhook_id: str, now: datetime) -> list[str]:
    """The secrets deliveries are signed with now: the current one first, then those still
    in their grace period."""
    rows = await session.exec(
        select(WebhookSecret)
        .where(
            WebhookSecret.webhook_id == webhook_id,
            (col(WebhookSecret.expires_at).is_(None)) | (col(WebhookSecret.expires_at) > now),
        )
        .order_by(col(WebhookSecret.created_at).desc(), col(WebhookSecret.id).desc())
    )
    return [row.secret for row in rows.all()]


async def create_webhook(
    *,
    db: Database,
    viewer: Viewer,
    url: str,
    events: Sequence[str],
    description: str | None = None,
    tenant_id: str | None = None,
    allow_private_addresses: bool,
    max_per_tenant: int = 20,
) -> CreatedWebhook:
    """ORGANIZER (their tenant) or OPERATOR (any tenant, or platform-wide without one)."""
    _may_manage(viewer)
    topics = _events(events)
    text = validation.optional_text(description, field="description", max_length=200)
    checked = await check_url(url, allow_private=allow_private_addresses)
    secret = new_secret()
    async with db.write() as session:
        owner = await _owner_tenant(session, viewer, tenant_id)
        count = (
            await session.exec(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(
                    col(WebhookEndpoint.tenant_id).is_(None)
                    if owner is None
                    else col(WebhookEndpoint.tenant_id) == owner
                )
            )
        ).one()
        if count >= max_per_tenant:
            raise BadUserInput(f"At most {max_per_tenant} webhooks per tenant.", field="tenantId")
        endpoint = WebhookEndpoint(
            tenant_id=owner,
            url=checked,
            description=text,
            events=topics,
            created_by=viewer.user_id,
        )
        session.add(endpoint)
        session.add(WebhookSecret(webhook_id=endpoint.id, secret=secret))
        audit.record(
            session,
            viewer=viewer,
            action="webhook.create",
            target_type="Webhook",
            target_id=endpoint.id,
            tenant_id=owner,
            after=audit.snapshot(endpoint, AUDITED_FIELDS),
        )
    return CreatedWebhook(endpoint=endpoint, secret=secret)


async def get_webhook(*, db: Database, viewer: Viewer, webhook_id: str) -> WebhookEndpoint:
    _may_manage(viewer)
    async with db.read() as session:
        return await _endpoint(session, viewer, webhook_id)


async def list_webhooks(
    *, db: Database, viewer: Viewer, tenant_id: str | None = None
) -> list[WebhookEndpoint]:
    """A tenant's endpoints (the organizer's only tenant by default); operators without a
    tenant get the platform-wide ones."""
    _may_manage(viewer)
    query = select(WebhookEndpoint).order_by(
        col(WebhookEndpoint.created_at), col(WebhookEndpoint.id)
    )
    async with db.read() as session:
        owner = await _owner_tenant(session, viewer, tenant_id)
        query = query.where(
            col(WebhookEndpoint.tenant_id).is_(None)
            if owner is None
            else col(WebhookEndpoint.tenant_id) == owner
        )
        return list((await session.exec(query)).all())


async def update_webhook(
    *,
    db: Database,
    viewer: Viewer,
    webhook_id: str,
    allow_private_addresses: bool,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    enabled: bool | None = None,
) -> WebhookEndpoint:
    """Change what is given. Enabling a disabled endpoint clears its backoff; its pending
    deliveries resume."""
    _may_manage(viewer)
    topics = _events(events) if events is not None else None
    text = (
        validation.optional_text(description, field="description", max_length=200)
        if description is not None
        else None
    )
    checked = (
        await check_url(url, allow_private=allow_private_addresses) if url is not None else None
    )
    async with db.write() as session:
        endpoint = await _endpoint(session, viewer, webhook_id)
        before = audit.snapshot(endpoint, AUDITED_FIELDS)
        if checked is not None:
            endpoint.url = checked
        if topics is not None:
            endpoint.events = topics
        if description is not None:
            endpoint.description = text
        if enabled is True and endpoint.status != WebhookStatus.ACTIVE:
            endpoint.status, endpoint.disabled_reason = WebhookStatus.ACTIVE, None
            endpoint.consecutive_failures, endpoint.retry_at = 0, None
        elif enabled is False and endpoint.status != WebhookStatus.DISABLED:
            endpoint.status, endpoint.disabled_reason = WebhookStatus.DISABLED, "disabled by user"
        endpoint.updated_at = utcnow()
        session.add(endpoint)
        audit.record(
            session,
            viewer=viewer,
            action="webhook.update",
            target_type="Webhook",
            target_id=endpoint.id,
            tenant_id=endpoint.tenant_id,
            before=before,
            after=audit.snapshot(endpoint, AUDITED_FIELDS),
        )
    return endpoint


async def rotate_secret(
    *, db: Database, viewer: Viewer, webhook_id: str, grace_seconds: int
) -> RotatedSecret:
    """A new signing secret; the previous ones stay valid for ``grace_seconds`` (0: at once)."""
    _may_manage(viewer)
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise BadUserInput(
            f"graceSeconds must be between 0 and {MAX_GRACE_SECONDS}.", field="graceSeconds"
        )
    now = utcnow()
    until = now + timedelta(seconds=grace_seconds)
    secret = new_secret()
    async with db.write() as session:
        endpoint = await _endpoint(session, viewer, webhook_id)
        await session.exec(
            delete(WebhookSecret).where(
                col(WebhookSecret.webhook_id) == endpoint.id,
                col(WebhookSecret.expires_at) <= now,
            )
        )
        previous = (
            await session.exec(select(WebhookSecret).where(WebhookSecret.webhook_id == endpoint.id))
        ).all()
        for row in previous:
            if row.expires_at is None or row.expires_at > until:
                row.expires_at = until
                session.add(row)
        session.add(WebhookSecret(webhook_id=endpoint.id, secret=secret))
        endpoint.updated_at = now
        session.add(endpoint)
        audit.record(
            session,
            viewer=viewer,
            action="webhook.rotate_secret",
            target_type="Webhook",
            target_id=endpoint.id,
            tenant_id=endpoint.tenant_id,
            after={"previousSecretsExpireAt": until.isoformat() if previous else None},
        )
    return RotatedSecret(
        endpoint=endpoint, secret=secret, previous_expires_at=until if previous else None
    )


async def delete_webhook(*, db: Database, viewer: Viewer, webhook_id: str) -> bool:
    """Delete the endpoint with its secrets, deliveries and their attempts."""
    _may_manage(viewer)
    async with db.write() as session:
        endpoint = await _endpoint(session, viewer, webhook_id)
        before = audit.snapshot(endpoint, AUDITED_FIELDS)
        delivery_ids = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == endpoint.id)
        await session.exec(
            delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(delivery_ids))
        )
        await session.exec(
            delete(WebhookDelivery).where(col(WebhookDelivery.webhook_id) == endpoint.id)
        )
        await session.exec(
            delete(WebhookSecret).where(col(WebhookSecret.webhook_id) == endpoint.id)
        )
        await session.delete(endpoint)
        audit.record(
            session,
            viewer=viewer,
            action="webhook.delete",
            target_type="Webhook",
            target_id=webhook_id,
            tenant_id=before["tenant_id"],
            before=before,
        )
    return True


async def list_deliveries(
    *,
    db: Database,
    viewer: Viewer,
    webhook_id: str,
    first: int | None = None,
    after: str | None = None,
) -> Page[WebhookDelivery]:
    """An endpoint's deliveries, newest first."""
    _may_manage(viewer)
    size = page_size(first)
    query = apply_keyset(
        select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id),
        DELIVERY_KEYS,
        after=after,
    )
    async with db.read() as session:
        await _endpoint(session, viewer, webhook_id)
        rows = list((await session.exec(query.limit(size + 1))).all())
    return Page.from_rows(rows, DELIVERY_KEYS, size)


async def count_deliveries(*, db: Database, webhook_id: str) -> int:
    """For a list the caller was already allowed to read (``list_deliveries``)."""
    query = (
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == webhook_id)
    )
    async with db.read() as session:
        return int((await session.exec(query)).one())


async def attempts_of(db: Database, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    """The attempts of each delivery, oldest first."""
    grouped: dict[str, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    async with db.read() as session:
        rows = await session.exec(
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(list(delivery_ids)))
            .order_by(col(WebhookAttempt.attempted_at), col(WebhookAttempt.id))
        )
        for row in rows.all():
            grouped[row.delivery_id].append(row)
    return grouped


async def redeliver(
    *, db: Database, viewer: Viewer, delivery_id: str, retry_window_seconds: int
) -> WebhookDelivery:
    """Send a delivery again, now (same event id and delivery id), with a fresh retry window,
    even if the endpoint is backing off. BAD_USER_INPUT while the endpoint is disabled."""
    _may_manage(viewer)
    now = utcnow()
    async with db.write() as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            raise NotFound("No such delivery.")
        endpoint = await session.get(WebhookEndpoint, delivery.webhook_id)
        if endpoint is None or not _in_scope(viewer, endpoint.tenant_id):
            raise NotFound("No such delivery.")
        if endpoint.status != WebhookStatus.ACTIVE:
            raise BadUserInput("The webhook is disabled; enable it first.", field="deliveryId")
        before: dict[str, Any] = {"status": delivery.status, "attempts": delivery.attempts}
        delivery.status = WebhookDeliveryStatus.PENDING
        delivery.next_attempt_at = now
        delivery.give_up_at = now + timedelta(seconds=retry_window_seconds)
        delivery.updated_at = now
        session.add(delivery)
        endpoint.retry_at = None  # a person asked for it now: skip the endpoint's rest
        session.add(endpoint)
        audit.record(
            session,
            viewer=viewer,
            action="webhook.redeliver",
            target_type="WebhookDelivery",
            target_id=delivery.id,
            tenant_id=endpoint.tenant_id,
            before=before,
            after={"status": delivery.status, "eventId": delivery.event_id},
        )
    return delivery
