"""Telling people about outbox events: in-app messages, SMS and e-mail, exactly once each.

The notification consumer reads the events that concern a person (``NOTIFIED_TOPICS``; the
payload names the person in ``userId``, or, for ``STAFF_TOPICS``, the tenant's organizers
are told), renders the topic's template in the payload's ``locale`` (zh-CN by default) and
delivers it on the template's channels.

Exactly once per ``(event, channel, recipient)``: each is a ``notifications`` row under a
unique key, written in the same transaction as the in-app message or the sandbox provider's
record, so a dispatcher killed at any point and run again finds the row and skips, or finds
nothing and starts over. Providers that cannot join the transaction are called between a
SENDING and a SENT write, with the row's id as their idempotency key. Failures raise, and the
outbox retries the event with backoff (each channel already done is skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlmodel import col, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.broker import Broker, channels
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import BadUserInput
from boxoffice.models.identity import Membership, Role, User, UserStatus
from boxoffice.models.notifications import Notification, NotificationChannel, NotificationStatus
from boxoffice.models.outbox import OutboxEvent
from boxoffice.providers.messaging import NotificationSender, OutgoingMessage
from boxoffice.services.notification_templates import (
    NOTIFIED_TOPICS,
    Rendered,
    pick_locale,
    render,
    template_for,
)
from boxoffice.services.outbox import Consumer
from boxoffice.services.pagination import Page, SortKey, apply_keyset, page_size
from boxoffice.services.viewer import Viewer

if TYPE_CHECKING:
    from boxoffice.runtime import Runtime

log = logging.getLogger("boxoffice.notifications")

CONSUMER_NAME = "notifications"
STAFF_TOPICS = frozenset({"merchant.audited", "ticket.check_in_conflict"})  # to the organizers
MAX_MARK_READ_IDS = 500

PAGE_KEYS: list[SortKey[Notification]] = [
    SortKey(col(Notification.created_at), lambda n: n.created_at, "datetime", descending=True),
    SortKey(col(Notification.id), lambda n: n.id, descending=True),
]


def notification_consumer(sender: NotificationSender | None = None) -> Consumer:
    """The outbox consumer; ``sender`` defaults to the runtime's messaging provider."""

    async def handle(rt: Runtime, event: OutboxEvent) -> None:
        await notify(rt, event, sender=sender or rt.messaging)

    return Consumer(CONSUMER_NAME, handle, topics=NOTIFIED_TOPICS)


def _resource(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    resource = payload.get("resource")
    return resource if isinstance(resource, Mapping) else {}


async def notify(rt: Runtime, event: OutboxEvent, *, sender: NotificationSender) -> int:
    """Deliver ``event``'s notification on every channel to every recipient not yet served.
    Return how many deliveries this call made (0 when all were done before)."""
    payload = event.payload if isinstance(event.payload, Mapping) else {}
    resource = _resource(payload)
    template = template_for(event.topic, resource)
    if template is None:
        return 0
    recipients = await _recipients(rt.db, event, payload)
    if not recipients:
        log.info("notification for %s has no recipient", event.event_id)
        return 0
    rendered = render(template, resource, pick_locale(payload.get("locale")))
    made = 0
    for user in recipients:
        for channel in template.channels:
            if await _deliver(rt, sender, event, user, channel, rendered):
                made += 1
    return made


async def _recipients(db: Database, event: OutboxEvent, payload: Mapping[str, Any]) -> list[User]:
    user_id = payload.get("userId")
    async with db.read() as session:
        if isinstance(user_id, str) and user_id:
            user = await session.get(User, user_id)
            if user is None:
                log.warning("event %s names unknown user %s", event.event_id, user_id)
            if user is None or user.status == UserStatus.DELETED:
                return []
            return [user]
        if event.topic in STAFF_TOPICS and event.tenant_id:
            rows = await session.exec(
                select(User)
                .join(Membership, col(Membership.user_id) == col(User.id))
                .where(
                    Membership.tenant_id == event.tenant_id,
                    Membership.role == Role.ORGANIZER,
                )
                .order_by(col(User.id))
            )
            return list(rows.all())
    return []


def _address(user: User, channel: NotificationChannel) -> str | None:
    if channel is NotificationChannel.SMS:
        return user.phone
    if channel is NotificationChannel.EMAIL:
        return user.email
    return None


async def _existing(
    session: AsyncSession, event_id: str, channel: NotificationChannel, user_id: str
) -> Notification | None:
    query = select(Notification).where(
        Notification.event_id == event_id,
        Notification.channel == channel,
        Notification.user_id == user_id,
    )
    return (await session.exec(query)).first()


async def _deliver(
    rt: Runtime,
    sender: NotificationSender,
    event: OutboxEvent,
    user: User,
    channel: NotificationChannel,
    rendered: Rendered,
) -> bool:
    address = _address(user, channel)
    if channel is not NotificationChannel.IN_APP and not address:
        return False
    now = utcnow()
    async with rt.db.write() as session:
        row = await _existing(session, event.event_id, channel, user.id)
        if row is not None and row.status == NotificationStatus.SENT:
            return False
        if row is None:
            row = Notification(
                event_id=event.event_id,
                topic=event.topic,
                channel=channel,
                user_id=user.id,
                tenant_id=event.tenant_id,
                locale=rendered.locale,
                recipient=address,
                title=rendered.title[:200],
                body=rendered.body[:2000],
                resource_type=event.aggregate_type,
                resource_id=event.aggregate_id,
                status=NotificationStatus.SENDING,
            )
        message = _message(row, channel, address, rendered)
        in_transaction = message is None or sender.transactional
        if in_transaction:
            if message is not None:
                sender.record(session, message)
            row.status, row.sent_at = NotificationStatus.SENT, now
        session.add(row)
    if not in_transaction:
        assert message is not None
        await sender.send(message)
        async with rt.db.write() as session:
            await session.exec(
                update(Notification)
                .where(col(Notification.id) == row.id)
                .values(status=NotificationStatus.SENT, sent_at=utcnow())
            )
    if channel is NotificationChannel.IN_APP:
        await _publish(rt.backends.broker, user.id, row.id)
    return True


def _message(
    row: Notification, channel: NotificationChannel, address: str | None, rendered: Rendered
) -> OutgoingMessage | None:
    if channel is NotificationChannel.IN_APP or address is None:
        return None
    if channel is NotificationChannel.SMS:
        return OutgoingMessage("SMS", address, rendered.sms, key=row.id)
    return OutgoingMessage(
        "EMAIL", address, rendered.email_body, subject=rendered.email_subject, key=row.id
    )


async def _publish(broker: Broker, user_id: str, notification_id: str) -> None:
    """Best effort: the message is stored; a subscriber that misses the push reads it later."""
    try:
        await broker.publish(channels.user_notifications(user_id), notification_id)
    except Exception as exc:  # a push never fails a delivery that is already committed
        log.warning("could not push notification %s: %s", notification_id, exc)


def _mine(user_id: str, unread_only: bool) -> list[Any]:
    conditions: list[Any] = [
        col(Notification.user_id) == user_id,
        col(Notification.channel) == NotificationChannel.IN_APP,
    ]
    if unread_only:
        conditions.append(col(Notification.read_at).is_(None))
    return conditions


async def list_notifications(
    *,
    db: Database,
    viewer: Viewer,
    unread_only: bool = False,
    first: int | None = None,
    after: str | None = None,
) -> Page[Notification]:
    """The caller's in-app messages, newest first."""
    user_id = viewer.require_user()
    size = page_size(first)
    query = apply_keyset(
        select(Notification).where(*_mine(user_id, unread_only)), PAGE_KEYS, after=after
    )
    async with db.read() as session:
        rows = list((await session.exec(query.limit(size + 1))).all())
    return Page.from_rows(rows, PAGE_KEYS, size)


async def count_notifications(*, db: Database, viewer: Viewer, unread_only: bool = False) -> int:
    user_id = viewer.require_user()
    query = select(func.count()).select_from(Notification).where(*_mine(user_id, unread_only))
    async with db.read() as session:
        return int((await session.exec(query)).one())


async def mark_read(*, db: Database, viewer: Viewer, ids: Sequence[str] | None) -> int:
    """Mark the caller's unread messages read (those in ``ids``, or all); return how many
    changed. Ids of other people's messages, or already read ones, change nothing."""
    user_id = viewer.require_user()
    if ids is not None and len(ids) > MAX_MARK_READ_IDS:
        raise BadUserInput(f"At most {MAX_MARK_READ_IDS} ids at once.", field="ids")
    statement = (
        update(Notification)
        .where(
            col(Notification.user_id) == user_id,
            col(Notification.channel) == NotificationChannel.IN_APP,
            col(Notification.read_at).is_(None),
        )
        .values(read_at=utcnow())
    )
    if ids is not None:
        if not ids:
            return 0
        statement = statement.where(col(Notification.id).in_(sorted(set(ids))))
    async with db.write() as session:
        result = await session.exec(statement)
    return int(result.rowcount or 0)


async def get_own(db: Database, user_id: str, notification_id: str) -> Notification | None:
    async with db.read() as session:
        row = await session.get(Notification, notification_id)
    if row is None or row.user_id != user_id or row.channel != NotificationChannel.IN_APP:
        return None
    return row


async def latest(db: Database, user_id: str, *, limit: int = 20) -> list[Notification]:
    """The caller's newest in-app messages, oldest of them first (for a subscriber catching
    up after it may have missed pushes)."""
    query = apply_keyset(select(Notification).where(*_mine(user_id, False)), PAGE_KEYS, after=None)
    async with db.read() as session:
        rows = list((await session.exec(query.limit(limit))).all())
    return list(reversed(rows))
