"""The notification consumer: templates and locales, recipients, and exactly one message per
(event, channel, recipient) even when the dispatcher dies mid-delivery and runs again."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.clock import utcnow
from boxoffice.models.identity import Role, SandboxMessage, User
from boxoffice.models.notifications import Notification, NotificationChannel, NotificationStatus
from boxoffice.models.outbox import DeliveryStatus, OutboxDelivery, OutboxEvent
from boxoffice.providers.messaging import OutgoingMessage, ProviderMessaging, SandboxMessaging
from boxoffice.runtime import Runtime
from boxoffice.services import notifications
from boxoffice.services.notification_templates import TEMPLATES, pick_locale, render
from boxoffice.services.outbox import Consumer, dispatch_once
from tests.helpers import make_tenant, make_user
from tests.outbox_events import emit_event, order_resource


class ProviderCrash(Exception):
    """The process 'dies' right after the provider did its part."""


async def customer(rt: Runtime, email: str = "fan@example.com", phone: str | None = None) -> User:
    user = await make_user(rt, email)
    if phone:
        async with rt.db.write() as session:
            row = await session.get(User, user.id)
            assert row is not None
            row.phone = phone
            session.add(row)
        user.phone = phone
    return user


async def sandbox_messages(rt: Runtime) -> list[SandboxMessage]:
    async with rt.db.read() as session:
        rows = await session.exec(select(SandboxMessage).order_by(col(SandboxMessage.channel)))
        return list(rows.all())


async def notification_rows(rt: Runtime) -> list[Notification]:
    async with rt.db.read() as session:
        rows = await session.exec(select(Notification).order_by(col(Notification.channel)))
        return list(rows.all())


class CrashAfterRecordOnce:
    """The sandbox provider, but the first message it records takes the process down before
    the transaction commits (as a kill between 'sent' and 'recorded' would)."""

    transactional = True

    def __init__(self, inner: SandboxMessaging) -> None:
        self.inner = inner
        self.crashed = False

    def record(self, session: AsyncSession, message: OutgoingMessage) -> None:
        self.inner.record(session, message)
        if not self.crashed:
            self.crashed = True
            raise ProviderCrash("killed after the provider call")

    async def send(self, message: OutgoingMessage) -> None:
        raise AssertionError("transactional senders are not called outside the transaction")


class IdempotentProvider:
    """An outside SMS/e-mail API that drops a repeated idempotency key, as real ones do; the
    first call 'kills' the dispatcher after the provider accepted it."""

    transactional = False

    def __init__(self) -> None:
        self.calls: list[OutgoingMessage] = []
        self.accepted: dict[str, OutgoingMessage] = {}
        self.crash_next = True

    def record(self, session: AsyncSession, message: OutgoingMessage) -> None:
        raise AssertionError("not transactional")

    async def send(self, message: OutgoingMessage) -> None:
        self.calls.append(message)
        self.accepted.setdefault(message.key, message)
        if self.crash_next:
            self.crash_next = False
            raise ProviderCrash("killed after the provider call")


# templates and locales


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, "zh-CN"),
        ("zh-CN", "zh-CN"),
        ("en", "en"),
        ("en-US", "en"),
        ("fr", "zh-CN"),
        (3, "zh-CN"),
    ],
)
def test_locale_is_picked_with_chinese_by_default(given: object, expected: str):
    assert pick_locale(given) == expected


def test_every_template_renders_in_both_languages_even_from_an_empty_resource():
    for key, template in TEMPLATES.items():
        for locale in ("zh-CN", "en"):
            rendered = render(template, {}, locale)
            assert rendered.title and rendered.body, key
            assert "{" not in rendered.body and "{" not in rendered.sms, key


def test_order_paid_reads_the_order_as_the_api_shows_it():
    resource = order_resource("BO42", "99.50")
    zh = render(TEMPLATES["order.paid"], resource, "zh-CN")
    en = render(TEMPLATES["order.paid"], resource, "en")
    assert zh.title == "支付成功"
    assert "BO42" in zh.body and "¥99.50" in zh.body and "Laugh Lab Night" in zh.body
    assert zh.sms.startswith("【Boxoffice】")
    assert en.title == "Payment received"
    assert "BO42" in en.body and "CNY 99.50" in en.body
    assert en.email_subject.startswith("Payment received")


async def test_the_payload_locale_picks_the_language(rt: Runtime):
    # given two customers, one asking for English
    zh_user = await customer(rt, "zh@example.com")
    en_user = await customer(rt, "en@example.com")
    await emit_event(rt, "order.paid", user_id=zh_user.id)
    await emit_event(rt, "order.paid", user_id=en_user.id, locale="en-US")
    # when the notifications are dispatched
    assert await dispatch_once(rt, notifications.notification_consumer()) == 2
    # then each got the template in their language, in-app and by e-mail
    rows = await notification_rows(rt)
    by_user = {(r.user_id, r.channel): r for r in rows}
    assert by_user[(zh_user.id, NotificationChannel.IN_APP)].title == "支付成功"
    assert by_user[(zh_user.id, NotificationChannel.IN_APP)].locale == "zh-CN"
    assert by_user[(en_user.id, NotificationChannel.IN_APP)].title == "Payment received"
    mails = {m.recipient: m for m in await sandbox_messages(rt)}
    assert mails["en@example.com"].subject == "Payment received - Boxoffice"
    assert mails["zh@example.com"].subject == "支付成功 - Boxoffice"


async def test_channels_follow_the_template_and_the_contact_details(rt: Runtime):
    # given a customer with phone and e-mail
    user = await customer(rt, "both@example.com", phone="+8613800138000")
    # when an order is paid (in-app, SMS, e-mail) and one expires (in-app only)
    await emit_event(rt, "order.paid", user_id=user.id)
    await emit_event(rt, "order.expired", user_id=user.id)
    await dispatch_once(rt, notifications.notification_consumer())
    # then
    rows = await notification_rows(rt)
    assert sorted((r.topic, r.channel) for r in rows) == [
        ("order.expired", "IN_APP"),
        ("order.paid", "EMAIL"),
        ("order.paid", "IN_APP"),
        ("order.paid", "SMS"),
    ]
    assert all(r.status == NotificationStatus.SENT for r in rows)
    sent = await sandbox_messages(rt)
    assert [(m.channel, m.recipient) for m in sent] == [
        ("EMAIL", "both@example.com"),
        ("SMS", "+8613800138000"),
    ]
    assert sent[1].body.startswith("【Boxoffice】")


async def test_topics_that_tell_nobody_are_not_consumed(rt: Runtime):
    user = await customer(rt)
    await emit_event(rt, "ticket.checked_in", {"id": "t1", "ticketSn": "SN1"}, user_id=user.id)
    await emit_event(rt, "order.paid", user_id="no-such-user")
    await dispatch_once(rt, notifications.notification_consumer())
    assert await notification_rows(rt) == []


async def test_merchant_audit_tells_the_tenants_organizers(rt: Runtime):
    # given a tenant with two organizers (and someone else's organizer)
    tenant = await make_tenant(rt, "Laugh Lab")
    other = await make_tenant(rt, "Other")
    first = await make_user(rt, "o1@laughlab.test", Role.ORGANIZER, tenant)
    second = await make_user(rt, "o2@laughlab.test", Role.ORGANIZER, tenant)
    await make_user(rt, "o@other.test", Role.ORGANIZER, other)
    # when the operator rejects the merchant
    await emit_event(
        rt,
        "merchant.audited",
        {"id": tenant.id, "name": "Laugh Lab", "status": "REJECTED", "auditOpinion": "证照不全"},
        tenant_id=tenant.id,
    )
    await dispatch_once(rt, notifications.notification_consumer())
    # then both organizers are told, with the rejection and the opinion
    rows = [r for r in await notification_rows(rt) if r.channel == NotificationChannel.IN_APP]
    assert sorted(r.user_id for r in rows) == sorted([first.id, second.id])
    assert {r.title for r in rows} == {"商户审核未通过"}
    assert all("证照不全" in r.body for r in rows)


# exactly once


async def test_a_crash_inside_the_delivery_transaction_sends_exactly_once(rt: Runtime):
    # given a paid order and a provider call that 'kills' the dispatcher the first time
    user = await customer(rt, "crash@example.com", phone="+8613800138001")
    await emit_event(rt, "order.paid", user_id=user.id)
    crashing = CrashAfterRecordOnce(rt.messaging)
    consumer = notifications.notification_consumer(sender=crashing)
    now = utcnow()
    # when it runs, dies, and runs again after the backoff
    await dispatch_once(rt, consumer, now=now)
    assert crashing.crashed
    await dispatch_once(rt, consumer, now=now + timedelta(minutes=5))
    # then every channel was delivered exactly once
    sent = await sandbox_messages(rt)
    assert sorted(m.channel for m in sent) == ["EMAIL", "SMS"]
    rows = await notification_rows(rt)
    assert sorted(r.channel for r in rows) == ["EMAIL", "IN_APP", "SMS"]
    async with rt.db.read() as session:
        delivery = (await session.exec(select(OutboxDelivery))).one()
    assert delivery.status == DeliveryStatus.DONE
    assert delivery.attempts == 2


async def test_a_crash_after_delivering_before_the_outbox_records_it(rt: Runtime):
    # given a consumer whose process dies after delivering but before the outbox row is written
    user = await customer(rt, "late@example.com", phone="+8613800138002")
    await emit_event(rt, "order.paid", user_id=user.id)
    inner = notifications.notification_consumer()
    runs = 0

    async def dies_once_after_work(rt_: Runtime, event: OutboxEvent) -> None:
        nonlocal runs
        runs += 1
        await inner.handle(rt_, event)
        if runs == 1:
            raise ProviderCrash("killed before the outbox recorded the delivery")

    consumer = Consumer(inner.name, dies_once_after_work, topics=inner.topics)
    now = utcnow()
    # when the dispatcher runs again
    await dispatch_once(rt, consumer, now=now)
    await dispatch_once(rt, consumer, now=now + timedelta(minutes=5))
    # then the event was handled twice and still delivered once per channel
    assert runs == 2
    assert sorted(m.channel for m in await sandbox_messages(rt)) == ["EMAIL", "SMS"]
    assert len(await notification_rows(rt)) == 3


async def test_an_outside_provider_gets_the_same_idempotency_key_after_a_crash(rt: Runtime):
    # given a provider outside our transaction and a crash right after it accepted the SMS
    user = await customer(rt, "key@example.com", phone="+8613800138003")
    await emit_event(rt, "refund.completed", {"id": "r1", "refundNo": "RF1"}, user_id=user.id)
    provider = IdempotentProvider()
    consumer = notifications.notification_consumer(sender=provider)
    now = utcnow()
    # when the dispatcher runs again
    await dispatch_once(rt, consumer, now=now)
    rows = await notification_rows(rt)
    assert {r.channel: r.status for r in rows}[NotificationChannel.SMS] == "SENDING"
    await dispatch_once(rt, consumer, now=now + timedelta(minutes=5))
    # then the repeated call carried the same key, so the provider kept one message per channel
    sms_calls = [c for c in provider.calls if c.channel == "SMS"]
    assert len(sms_calls) == 2
    assert sms_calls[0].key == sms_calls[1].key
    assert sorted(m.channel for m in provider.accepted.values()) == ["EMAIL", "SMS"]
    assert all(r.status == NotificationStatus.SENT for r in await notification_rows(rt))


async def test_dispatchers_racing_on_one_event_deliver_once(rt: Runtime):
    # given one event and several dispatchers handling it at the same moment
    user = await customer(rt, "race@example.com", phone="+8613800138004")
    event = await emit_event(rt, "waitlist.offered", {"id": "w1"}, user_id=user.id)

    async def one() -> object:
        try:
            return await notifications.notify(rt, event, sender=rt.messaging)
        except IntegrityError as exc:  # the unique row refused a duplicate: retried later
            return exc

    # when they all run
    await asyncio.gather(*(one() for _ in range(6)))
    # then each channel was delivered by exactly one of them (the losers retry, and skip)
    assert sorted(m.channel for m in await sandbox_messages(rt)) == ["EMAIL", "SMS"]
    assert sorted(r.channel for r in await notification_rows(rt)) == ["EMAIL", "IN_APP", "SMS"]


class RecordingGateway:
    """Stands in for a real SMS gateway and e-mail API (SmsSender and EmailSender)."""

    def __init__(self) -> None:
        self.sms: list[tuple[str, str]] = []
        self.mail: list[tuple[str, str, str]] = []

    async def send_sms(self, phone: str, text: str) -> None:
        self.sms.append((phone, text))

    async def send_email(self, address: str, subject: str, body: str) -> None:
        self.mail.append((address, subject, body))


async def test_real_providers_plug_in_behind_the_sms_and_email_interfaces(rt: Runtime):
    # given SmsSender/EmailSender adapters of outside providers
    gateway = RecordingGateway()
    user = await customer(rt, "real@example.com", phone="+8613800138005")
    await emit_event(rt, "order.paid", order_resource("BO-REAL"), user_id=user.id, locale="en")
    # when the dispatcher sends through them
    consumer = notifications.notification_consumer(sender=ProviderMessaging(gateway, gateway))
    await dispatch_once(rt, consumer)
    await dispatch_once(rt, consumer, now=utcnow() + timedelta(minutes=5))
    # then each got its message once, nothing went to the sandbox, and the rows are SENT
    assert [(p, "BO-REAL" in t) for p, t in gateway.sms] == [("+8613800138005", True)]
    assert [(a, s) for a, s, _ in gateway.mail] == [
        ("real@example.com", "Payment received - Boxoffice")
    ]
    assert await sandbox_messages(rt) == []
    assert {r.status for r in await notification_rows(rt)} == {NotificationStatus.SENT}
