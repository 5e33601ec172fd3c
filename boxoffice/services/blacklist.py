"""The blacklist: users, device ids and IP addresses the waiting room refuses.

Operators add and remove entries (audited); ``is_blocked`` is the fast check every
``joinQueue`` makes. Its answers are cached per value in the short-lived store for
``CACHE_TTL_SECONDS``; adding or removing an entry deletes that value's cached answer, so in
the Redis configuration every process sees the change at once. (A check that read the
database just before the change may re-cache the old answer; it lasts at most the TTL.)
"""

from __future__ import annotations

import contextlib
import ipaddress

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, or_, select

from boxoffice.backends.codes import CodeStore
from boxoffice.db import Database
from boxoffice.errors import AlreadyExists, BadUserInput, NotFound
from boxoffice.models.blacklist import BlacklistEntry, BlacklistKind
from boxoffice.models.identity import Role, User
from boxoffice.services import audit, validation
from boxoffice.services.viewer import Viewer

CACHE_TTL_SECONDS = 30.0
MAX_LIST = 500
ENTRY_FIELDS = ("kind", "value", "reason")
_BLOCKED, _CLEAR = "1", "0"


def normalize(kind: BlacklistKind, value: str, *, field: str = "value") -> str:
    """The stored form of a value: IPs compressed (``::ffff:1.2.3.4`` → ``1.2.3.4``), others
    trimmed. Raises ``BadUserInput`` naming ``field``."""
    value = validation.text(value, field=field, max_length=128)
    if kind is BlacklistKind.IP:
        try:
            address = ipaddress.ip_address(value)
        except ValueError as exc:
            raise BadUserInput(f"{field} is not an IP address", field=field) from exc
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return address.compressed
    return value


def _cache_key(kind: BlacklistKind, value: str) -> str:
    return f"bl:{kind}:{value}"


async def add_entry(
    *,
    db: Database,
    codes: CodeStore,
    viewer: Viewer,
    kind: BlacklistKind,
    value: str,
    reason: str | None = None,
) -> BlacklistEntry:
    """OPERATOR only. A USER entry must name an existing user.

    Raises ``Forbidden``, ``BadUserInput`` (value, reason), ``AlreadyExists`` (value).
    """
    operator_id = viewer.require_role(Role.OPERATOR)
    value = normalize(kind, value)
    entry = BlacklistEntry(
        kind=kind,
        value=value,
        reason=validation.optional_text(reason, field="reason", max_length=500),
        created_by=operator_id,
    )
    try:
        async with db.write() as session:
            if kind is BlacklistKind.USER and await session.get(User, value) is None:
                raise BadUserInput("No user has this id.", field="value")
            taken = await session.exec(
                select(BlacklistEntry.id).where(
                    BlacklistEntry.kind == kind, BlacklistEntry.value == value
                )
            )
            if taken.first() is not None:
                raise AlreadyExists("This value is already blacklisted.", field="value")
            session.add(entry)
            await session.flush()
            audit.record(
                session,
                viewer=viewer,
                action="blacklist.add",
                target_type="BlacklistEntry",
                target_id=entry.id,
                after=audit.snapshot(entry, ENTRY_FIELDS),
            )
    except IntegrityError as exc:
        raise AlreadyExists("This value is already blacklisted.", field="value") from exc
    await codes.delete(_cache_key(kind, value))
    return entry


async def remove_entry(*, db: Database, codes: CodeStore, viewer: Viewer, entry_id: str) -> bool:
    """OPERATOR only. Raises ``Forbidden``, ``NotFound``."""
    viewer.require_role(Role.OPERATOR)
    async with db.write() as session:
        entry = await session.get(BlacklistEntry, entry_id)
        if entry is None:
            raise NotFound("No such blacklist entry.")
        audit.record(
            session,
            viewer=viewer,
            action="blacklist.remove",
            target_type="BlacklistEntry",
            target_id=entry.id,
            before=audit.snapshot(entry, ENTRY_FIELDS),
        )
        await session.delete(entry)
    await codes.delete(_cache_key(entry.kind, entry.value))
    return True


async def list_entries(
    *,
    db: Database,
    viewer: Viewer,
    kind: BlacklistKind | None = None,
    limit: int = 100,
) -> list[BlacklistEntry]:
    """OPERATOR only; newest first. Raises ``Forbidden``, ``BadUserInput`` (limit)."""
    viewer.require_role(Role.OPERATOR)
    validation.positive_int(limit, field="limit", maximum=MAX_LIST)
    query = select(BlacklistEntry).order_by(
        col(BlacklistEntry.created_at).desc(), col(BlacklistEntry.id).desc()
    )
    if kind is not None:
        query = query.where(BlacklistEntry.kind == kind)
    async with db.read() as session:
        return list((await session.exec(query.limit(limit))).all())


async def is_blocked(
    *,
    db: Database,
    codes: CodeStore,
    user_id: str | None,
    device_id: str | None,
    ip: str | None,
) -> BlacklistKind | None:
    """Which of the user, the device and the IP is blacklisted (the first found), or None.

    One round trip to the short-lived store when the answers are cached, plus one query for
    those that are not. An unparsable IP is not checked.
    """
    wanted: list[tuple[BlacklistKind, str]] = []
    if user_id:
        wanted.append((BlacklistKind.USER, user_id))
    if device_id:
        wanted.append((BlacklistKind.DEVICE, device_id.strip()))
    if ip:
        with contextlib.suppress(BadUserInput):
            wanted.append((BlacklistKind.IP, normalize(BlacklistKind.IP, ip)))
    if not wanted:
        return None
    cached = await codes.get_many([_cache_key(kind, value) for kind, value in wanted])
    for (kind, _value), answer in zip(wanted, cached, strict=True):
        if answer == _BLOCKED:
            return kind
    unknown = [pair for pair, answer in zip(wanted, cached, strict=True) if answer is None]
    if not unknown:
        return None
    async with db.read() as session:
        rows = await session.exec(
            select(BlacklistEntry.kind, BlacklistEntry.value).where(
                or_(
                    *(
                        (col(BlacklistEntry.kind) == kind) & (col(BlacklistEntry.value) == value)
                        for kind, value in unknown
                    )
                )
            )
        )
        found = {(BlacklistKind(kind), value) for kind, value in rows.all()}
    for kind, value in unknown:
        answer = _BLOCKED if (kind, value) in found else _CLEAR
        await codes.put(_cache_key(kind, value), answer, ttl_seconds=CACHE_TTL_SECONDS)
    for kind, value in unknown:
        if (kind, value) in found:
            return kind
    return None
