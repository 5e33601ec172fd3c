"""Domain enums exposed to GraphQL: registered here once, used by their own class names."""

from __future__ import annotations

import strawberry

from boxoffice.models.identity import Role, TenantStatus, UserStatus
from boxoffice.models.webhooks import WebhookDeliveryStatus, WebhookStatus
from boxoffice.services.sms_codes import SmsPurpose

for _enum in (Role, TenantStatus, UserStatus, SmsPurpose, WebhookStatus, WebhookDeliveryStatus):
    strawberry.enum(_enum)

__all__ = [
    "Role",
    "SmsPurpose",
    "TenantStatus",
    "UserStatus",
    "WebhookDeliveryStatus",
    "WebhookStatus",
]
