"""Synthetic outbox events, shaped like the ones orders, payments, tickets, refunds, the
waitlist and the queue emit: ``{"resource": <the object as the API shows it>, "userId",
"locale"}``."""

from __future__ import annotations

from typing import Any

from boxoffice.ids import new_id
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services.outbox import emit

AGGREGATES = {
    "order": "Order",
    "refund": "Refund",
    "ticket": "Ticket",
    "waitlist": "WaitlistEntry",
    "queue": "QueueTicket",
    "merchant": "Tenant",
    "coupon": "UserCoupon",
    "event": "Event",
    "session": "Session",
}


def order_resource(order_no: str = "BO20260101001", amount: str = "1280.00") -> dict[str, Any]:
    return {
        "id": new_id(),
        "orderNo": order_no,
        "status": "PAID",
        "total": {"amount": amount, "currency": "CNY"},
        "items": [{"eventTitle": "Laugh Lab Night", "quantity": 2}],
    }


async def emit_event(
    rt: Runtime,
    topic: str,
    resource: dict[str, Any] | None = None,
    *,
    tenant_id: str | None = None,
    user_id: str | None = None,
    locale: str | None = None,
) -> OutboxEvent:
    resource = resource if resource is not None else order_resource()
    payload: dict[str, Any] = {"resource": resource}
    if user_id is not None:
        payload["userId"] = user_id
    if locale is not None:
        payload["locale"] = locale
    async with rt.db.write() as session:
        event = emit(
            session,
            topic=topic,
            aggregate_type=AGGREGATES[topic.split(".", 1)[0]],
            aggregate_id=str(resource.get("id") or new_id()),
            payload=payload,
            tenant_id=tenant_id,
        )
    return event
