"""SMS and e-mail delivery. The sandbox adapters store each message in ``sandbox_messages``
(readable at ``GET /sandbox/messages`` in dev and by tests) instead of sending it.

Two interfaces: ``SmsSender``/``EmailSender`` for one-off messages (verification codes), and
``NotificationSender`` for the notification dispatcher, which needs to know whether an adapter
can join its transaction (exactly once) or calls an outside system (then it passes an
idempotency key so a repeat after a crash can be dropped by the provider).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.db import Database
from boxoffice.models.identity import SandboxMessage
from boxoffice.pii import mask_contact

log = logging.getLogger("boxoffice.providers.messaging")


mask_recipient = mask_contact  # ``a***@example.com``, ``+86****8000``


class SmsSender(Protocol):
    async def send_sms(self, phone: str, text: str) -> None: ...


class EmailSender(Protocol):
    async def send_email(self, address: str, subject: str, body: str) -> None: ...


@dataclass(frozen=True)
class OutgoingMessage:
    channel: Literal["SMS", "EMAIL"]
    recipient: str
    body: str
    subject: str | None = None
    key: str = ""  # the same on every retry of one notification: the provider's idempotency key


class NotificationSender(Protocol):
    """How the notification dispatcher hands over an SMS or an e-mail.

    With ``transactional`` true, ``record`` adds the message to ``session`` — the transaction
    that marks the notification SENT — so both commit or neither does: exactly once. Otherwise
    ``send`` is called after the notification was claimed (SENDING) and before it is marked
    SENT; a crash in between repeats the call with the same ``message.key``, which an adapter
    for a real provider passes on as its idempotency key (an SMS gateway's out id, an e-mail
    API's idempotency header) so the provider drops the repeat.
    """

    @property
    def transactional(self) -> bool: ...

    def record(self, session: AsyncSession, message: OutgoingMessage) -> None: ...

    async def send(self, message: OutgoingMessage) -> None: ...


class ProviderMessaging:
    """A ``NotificationSender`` over real ``SmsSender`` and ``EmailSender`` adapters (not
    transactional; they see no idempotency key, so a crash between sending and recording may
    repeat a message: give providers that take a key their own ``NotificationSender``)."""

    transactional = False

    def __init__(self, sms: SmsSender, email: EmailSender) -> None:
        self._sms = sms
        self._email = email

    def record(self, session: AsyncSession, message: OutgoingMessage) -> None:
        raise NotImplementedError("ProviderMessaging is not transactional")

    async def send(self, message: OutgoingMessage) -> None:
        if message.channel == "SMS":
            await self._sms.send_sms(message.recipient, message.body)
        else:
            await self._email.send_email(message.recipient, message.subject or "", message.body)


class SandboxMessaging:
    """Records SMS and e-mail in the database instead of delivering them."""

    transactional = True

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, session: AsyncSession, message: OutgoingMessage) -> None:
        """Add ``message`` to the caller's transaction."""
        session.add(
            SandboxMessage(
                channel=message.channel,
                recipient=message.recipient,
                subject=message.subject,
                body=message.body,
            )
        )

    async def send(self, message: OutgoingMessage) -> None:
        await self._record(message.channel, message.recipient, message.subject, message.body)

    async def _record(self, channel: str, recipient: str, subject: str | None, body: str) -> None:
        async with self._db.write() as session:
            session.add(
                SandboxMessage(channel=channel, recipient=recipient, subject=subject, body=body)
            )
        log.info("sandbox %s to %s recorded", channel, mask_recipient(recipient))

    async def send_sms(self, phone: str, text: str) -> None:
        await self._record("SMS", phone, None, text)

    async def send_email(self, address: str, subject: str, body: str) -> None:
        await self._record("EMAIL", address, subject, body)
