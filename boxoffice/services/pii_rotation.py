"""Re-sealing personal data with the current key (``boxoffice rotate-pii-key``).

Rotating a PII key: add the new key to ``BOXOFFICE_PII_KEYS``, make it current
(``BOXOFFICE_PII_KEY_ID``) and restart — new writes use it and the old key still opens older
values — then run ``rotate_pii_key``, which re-seals every value sealed with another key (or
still in plaintext) in batches, one short transaction each, so it can run while the platform
serves and be run again after an interruption. Once it reports nothing left, the old key can
be removed. With ``rehash`` it also recomputes every lookup hash (after replacing
``BOXOFFICE_PII_HASH_KEY``; until it finishes, rows not yet rehashed cannot be found by
phone or e-mail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Text, type_coerce
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import SQLModel, col, select

from boxoffice.db import Database
from boxoffice.models.identity import SandboxMessage, User, WechatAccount
from boxoffice.models.notifications import Notification
from boxoffice.models.orders import Order
from boxoffice.pii import PiiCipher

# every table with encrypted columns, and those columns (a test checks none is missing)
SEALED: tuple[tuple[type[SQLModel], tuple[str, ...]], ...] = (
    (User, ("email", "phone", "real_name")),
    (Order, ("contact_name", "contact_phone")),
    (WechatAccount, ("openid", "unionid")),
    (SandboxMessage, ("recipient",)),
    (Notification, ("recipient",)),
)
BATCH = 500


@dataclass
class Resealed:
    table: str
    scanned: int = 0
    resealed: int = 0


async def _stale_ids(
    db: Database,
    model: Any,
    columns: tuple[str, ...],
    cipher: PiiCipher,
    *,
    after: str,
    rehash: bool,
) -> tuple[list[str], list[str]]:
    """One batch after ``after``: the ids read, and those that need re-sealing."""
    raw = [type_coerce(getattr(model, name), Text).label(name) for name in columns]
    query = select(model.id, *raw).where(col(model.id) > after).order_by(col(model.id))
    async with db.read() as session:
        rows = (await session.exec(query.limit(BATCH))).all()
    ids = [row[0] for row in rows]
    stale = [
        row[0] for row in rows if rehash or any(cipher.needs_resealing(value) for value in row[1:])
    ]
    return ids, stale


async def _reseal(db: Database, model: Any, columns: tuple[str, ...], ids: list[str]) -> None:
    async def work(session: Any) -> None:
        found = (await session.exec(select(model).where(col(model.id).in_(ids)))).all()
        for row in found:
            for name in columns:
                flag_modified(row, name)  # written again: sealed with the current key
            session.add(row)

    await db.write_retrying(work, what=f"re-seal {model.__tablename__}")


async def rotate_pii_key(
    db: Database, cipher: PiiCipher, *, rehash: bool = False
) -> list[Resealed]:
    """Re-seal with ``cipher``'s current key every value sealed with another one (and, with
    ``rehash``, recompute every lookup hash). ``cipher`` must be the installed one."""
    report = []
    for model, columns in SEALED:
        done = Resealed(str(model.__tablename__))
        after = ""
        while True:
            ids, stale = await _stale_ids(db, model, columns, cipher, after=after, rehash=rehash)
            if not ids:
                break
            if stale:
                await _reseal(db, model, columns, stale)
            done.scanned += len(ids)
            done.resealed += len(stale)
            after = ids[-1]
        report.append(done)
    return report
