"""Domain enums exposed to GraphQL: registered here once, used by their own class names."""

from __future__ import annotations

import strawberry

from boxoffice.models.events import (
    EventCategory,
    EventStatus,
    SeatStatus,
    SessionStatus,
    TierStatus,
)
from boxoffice.models.identity import Role, TenantStatus, UserStatus
from boxoffice.models.webhooks import WebhookDeliveryStatus, WebhookStatus
from boxoffice.services.pagination import SortDirection
from boxoffice.services.search import EventSortField
from boxoffice.services.sms_codes import SmsPurpose

for _enum in (
    Role,
    TenantStatus,
    UserStatus,
    SmsPurpose,
    EventCategory,
    EventStatus,
    SessionStatus,
    TierStatus,
    SeatStatus,
    EventSortField,
    SortDirection,
    WebhookStatus,
    WebhookDeliveryStatus,
):
    strawberry.enum(_enum)

__all__ = [
    "EventCategory",
    "EventSortField",
    "EventStatus",
    "Role",
    "SeatStatus",
    "SessionStatus",
    "SmsPurpose",
    "SortDirection",
    "TenantStatus",
    "TierStatus",
    "UserStatus",
    "WebhookDeliveryStatus",
    "WebhookStatus",
]
