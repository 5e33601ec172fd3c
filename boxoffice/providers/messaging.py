"""SMS and e-mail delivery. The sandbox adapters store each message in ``sandbox_messages``
(readable at ``GET /sandbox/messages`` in dev and by tests) instead of sending it."""

from __future__ import annotations

import logging
from typing import Protocol

from boxoffice.db import Database
from boxoffice.models.identity import SandboxMessage

log = logging.getLogger("boxoffice.providers.messaging")


def mask_recipient(recipient: str) -> str:
    if "@" in recipient:
        name, _, domain = recipient.partition("@")
        return f"{name[:1]}***@{domain}"
    return f"{recipient[:3]}****{recipient[-4:]}" if len(recipient) > 7 else "****"


class SmsSender(Protocol):
    async def send_sms(self, phone: str, text: str) -> None: ...


class EmailSender(Protocol):
    async def send_email(self, address: str, subject: str, body: str) -> None: ...


class SandboxMessaging:
    """Records SMS and e-mail in the database instead of delivering them."""

    def __init__(self, db: Database) -> None:
        self._db = db

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
