"""GraphQL types of webhooks and the changes feed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import strawberry
from strawberry.scalars import JSON

from boxoffice.models import webhooks as m
from boxoffice.models.outbox import OutboxEvent
from boxoffice.schema.context import Info
from boxoffice.schema.enums import WebhookDeliveryStatus, WebhookStatus


@strawberry.type(description="An HTTPS endpoint that receives signed events.")
class Webhook:
    id: strawberry.ID
    tenant_id: strawberry.ID | None = strawberry.field(
        description="Null for a platform-wide endpoint (operators): it gets every tenant's events."
    )
    url: str
    description: str | None
    events: list[str] = strawberry.field(description="Subscribed event types, or `*` for all.")
    status: WebhookStatus
    disabled_reason: str | None
    consecutive_failures: int
    retry_at: datetime | None = strawberry.field(
        description="While failing, the endpoint rests until then."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_model(cls, row: m.WebhookEndpoint) -> Webhook:
        return cls(
            id=strawberry.ID(row.id),
            tenant_id=strawberry.ID(row.tenant_id) if row.tenant_id else None,
            url=row.url,
            description=row.description,
            events=list(row.events),
            status=row.status,
            disabled_reason=row.disabled_reason,
            consecutive_failures=row.consecutive_failures,
            retry_at=row.retry_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@strawberry.type(description="A new endpoint and its signing secret, shown this once.")
class WebhookCreated:
    webhook: Webhook
    secret: str


@strawberry.type(description="The new signing secret, shown this once.")
class WebhookSecretRotated:
    webhook: Webhook
    secret: str
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="Until then deliveries are also signed with the previous secret(s)."
    )


@strawberry.type(description="One HTTP request of a delivery and its answer.")
class WebhookAttempt:
    id: strawberry.ID
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None = strawberry.field(description="The start of the answer's body.")

    @classmethod
    def from_model(cls, row: m.WebhookAttempt) -> WebhookAttempt:
        return cls(
            id=strawberry.ID(row.id),
            attempted_at=row.attempted_at,
            succeeded=row.succeeded,
            status_code=row.status_code,
            error=row.error,
            duration_ms=row.duration_ms,
            response_body=row.response_body,
        )


@strawberry.type(description="One event sent (or being sent) to one endpoint.")
class WebhookDelivery:
    id: strawberry.ID = strawberry.field(description="Sent as `Boxoffice-Delivery-Id`.")
    webhook_id: strawberry.ID
    event_id: strawberry.ID = strawberry.field(description="Sent as `Boxoffice-Event-Id`.")
    type: str
    status: WebhookDeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    give_up_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, row: m.WebhookDelivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(row.id),
            webhook_id=strawberry.ID(row.webhook_id),
            event_id=strawberry.ID(row.event_id),
            type=row.topic,
            status=row.status,
            attempt_count=row.attempts,
            next_attempt_at=row.next_attempt_at,
            give_up_at=row.give_up_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
        )

    @strawberry.field(description="Every request made for this delivery, oldest first.")
    async def attempts(self, info: Info) -> list[WebhookAttempt]:
        rows = await info.context.loaders.webhook_attempts_by_delivery.load(str(self.id))
        return [WebhookAttempt.from_model(r) for r in rows]


@strawberry.type(description="An event of the changes feed: the same body webhooks receive.")
class ChangeEvent:
    id: strawberry.ID
    type: str
    created_at: datetime
    tenant_id: strawberry.ID | None
    data: JSON | None = strawberry.field(description="The resource as the API shows it.")

    @classmethod
    def from_model(cls, event: OutboxEvent) -> ChangeEvent:
        payload: Mapping[str, Any] = event.payload if isinstance(event.payload, Mapping) else {}
        resource = payload.get("resource")
        return cls(
            id=strawberry.ID(event.event_id),
            type=event.topic,
            created_at=event.created_at.astimezone(UTC),
            tenant_id=strawberry.ID(event.tenant_id) if event.tenant_id else None,
            data=JSON(resource) if resource is not None else None,
        )


@strawberry.type(description="A page of the changes feed.")
class ChangeFeed:
    events: list[ChangeEvent]
    cursor: str = strawberry.field(
        description="Pass as `since` to continue, also when `events` is empty."
    )
    has_more: bool = strawberry.field(description="More events are available right now.")


@strawberry.input
class CreateWebhookInput:
    url: str
    events: list[str]
    description: str | None = None
    tenant_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="Organizers: defaults to their tenant. Operators: null for platform-wide.",
    )


@strawberry.input
class UpdateWebhookInput:
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = strawberry.field(
        default=None, description="false disables it; true re-enables it and clears its backoff."
    )
