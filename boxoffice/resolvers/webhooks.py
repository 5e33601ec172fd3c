"""Root fields for webhook endpoints, their deliveries and the changes feed."""

from __future__ import annotations

import strawberry

from boxoffice.schema.context import Info
from boxoffice.schema.pagination import Connection
from boxoffice.schema.webhooks import (
    ChangeEvent,
    ChangeFeed,
    CreateWebhookInput,
    UpdateWebhookInput,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookSecretRotated,
)
from boxoffice.services import change_feed, webhooks


@strawberry.type
class WebhookQuery:
    @strawberry.field(
        description="ORGANIZER: the tenant's endpoints (their only tenant by default). "
        "OPERATOR: a tenant's, or the platform-wide ones without `tenantId`."
    )
    async def webhooks(self, info: Info, tenant_id: strawberry.ID | None = None) -> list[Webhook]:
        found = await webhooks.list_webhooks(
            db=info.context.rt.db, viewer=await info.context.viewer(), tenant_id=tenant_id
        )
        return [Webhook.from_model(w) for w in found]

    @strawberry.field
    async def webhook(self, info: Info, id: strawberry.ID) -> Webhook:
        found = await webhooks.get_webhook(
            db=info.context.rt.db, viewer=await info.context.viewer(), webhook_id=id
        )
        return Webhook.from_model(found)

    @strawberry.field(description="An endpoint's deliveries, newest first, with their attempts.")
    async def webhook_deliveries(
        self,
        info: Info,
        webhook_id: strawberry.ID,
        first: int | None = 20,
        after: str | None = None,
    ) -> Connection[WebhookDelivery]:
        db = info.context.rt.db
        page = await webhooks.list_deliveries(
            db=db,
            viewer=await info.context.viewer(),
            webhook_id=webhook_id,
            first=first,
            after=after,
        )
        return Connection.of(
            page,
            WebhookDelivery.from_model,
            after=after,
            total=lambda: webhooks.count_deliveries(db=db, webhook_id=webhook_id),
        )

    @strawberry.field(
        description="The tenant's events in order (the webhook event types), from `since`. "
        "Operators without `tenantId` read every tenant's."
    )
    async def changes(
        self,
        info: Info,
        since: str | None = None,
        first: int | None = 50,
        tenant_id: strawberry.ID | None = None,
    ) -> ChangeFeed:
        page = await change_feed.changes(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            since=since,
            first=first,
        )
        return ChangeFeed(
            events=[ChangeEvent.from_model(e) for e in page.events],
            cursor=page.cursor,
            has_more=page.has_more,
        )


@strawberry.type
class WebhookMutation:
    @strawberry.mutation(
        description="ORGANIZER of the tenant or OPERATOR. The signing secret is shown only here."
    )
    async def create_webhook(self, info: Info, input: CreateWebhookInput) -> WebhookCreated:
        settings = info.context.rt.settings
        created = await webhooks.create_webhook(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            url=input.url,
            events=input.events,
            description=input.description,
            tenant_id=input.tenant_id,
            allow_private_addresses=settings.webhook_private_addresses_allowed,
            max_per_tenant=settings.webhook_max_endpoints_per_tenant,
        )
        return WebhookCreated(webhook=Webhook.from_model(created.endpoint), secret=created.secret)

    @strawberry.mutation
    async def update_webhook(
        self, info: Info, id: strawberry.ID, input: UpdateWebhookInput
    ) -> Webhook:
        updated = await webhooks.update_webhook(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            webhook_id=id,
            allow_private_addresses=info.context.rt.settings.webhook_private_addresses_allowed,
            url=input.url,
            events=input.events,
            description=input.description,
            enabled=input.enabled,
        )
        return Webhook.from_model(updated)

    @strawberry.mutation(
        description="A new signing secret (shown only here); the previous ones keep signing "
        "for `graceSeconds` (default: BOXOFFICE_WEBHOOK_SECRET_GRACE_SECONDS, 24 h)."
    )
    async def rotate_webhook_secret(
        self, info: Info, id: strawberry.ID, grace_seconds: int | None = None
    ) -> WebhookSecretRotated:
        settings = info.context.rt.settings
        rotated = await webhooks.rotate_secret(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            webhook_id=id,
            grace_seconds=(
                settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
            ),
        )
        return WebhookSecretRotated(
            webhook=Webhook.from_model(rotated.endpoint),
            secret=rotated.secret,
            previous_secret_expires_at=rotated.previous_expires_at,
        )

    @strawberry.mutation(description="Delete an endpoint with its delivery history.")
    async def delete_webhook(self, info: Info, id: strawberry.ID) -> bool:
        return await webhooks.delete_webhook(
            db=info.context.rt.db, viewer=await info.context.viewer(), webhook_id=id
        )

    @strawberry.mutation(description="Send a delivery again now (same event and delivery ids).")
    async def redeliver_webhook(self, info: Info, delivery_id: strawberry.ID) -> WebhookDelivery:
        delivery = await webhooks.redeliver(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            delivery_id=delivery_id,
            retry_window_seconds=info.context.rt.settings.webhook_retry_window_seconds,
        )
        return WebhookDelivery.from_model(delivery)
