"""Telling admitted users it is their turn: one ``queue.admitted`` outbox event per admission.

Written after the admission tick, in one transaction per tick and event, only for the users
that tick admitted (nothing per waiting user). The notification consumer renders it ("it's
your turn, choose your seats before …") and webhooks of the event's tenant may receive it.

The payload follows the outbox convention ``{"resource", "userId"}``; the resource is the
user's ``QueueTicket`` as the API shows it, without a queue token (tokens are handed out by
``queueStatus`` and the subscription only), with ``expiresAt`` the end of the admission
window and the event's title for the message.

A process that dies between admitting and writing loses these notices (the admissions stand:
the users see them in ``queueStatus`` and the subscription).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boxoffice.db import Database
from boxoffice.services import outbox
from boxoffice.services.queue_admission import TickReport
from boxoffice.services.queue_events import QueueEvent

TOPIC = "queue.admitted"


def admitted_resource(event: QueueEvent, *, until: datetime) -> dict[str, Any]:
    return {
        "eventId": event.event_id,
        "eventTitle": event.title,
        "status": "ADMITTED",
        "position": 0,
        "ahead": 0,
        "estimatedWaitSeconds": 0,
        "queueToken": None,
        "expiresAt": until.isoformat(),
    }


async def record_admissions(
    db: Database, *, event: QueueEvent, report: TickReport, window_seconds: float
) -> int:
    """Emit ``queue.admitted`` for each user ``report`` admitted (admitted for
    ``window_seconds`` from the tick); how many were written."""
    if not report.admitted:
        return 0
    until = datetime.fromtimestamp(report.at + window_seconds, UTC)
    resource = admitted_resource(event, until=until)
    async with db.write() as session:
        for user_id, seq in report.admitted:
            outbox.emit(
                session,
                topic=TOPIC,
                aggregate_type="QueueTicket",
                aggregate_id=f"{event.event_id}:{seq}",
                tenant_id=event.tenant_id,
                payload={"resource": resource, "userId": user_id},
            )
    return len(report.admitted)
