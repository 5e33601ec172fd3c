"""The blacklist: operators manage it (audited); the check is fast and sees changes at once."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from boxoffice.errors import AlreadyExists, BadUserInput, Forbidden, NotFound
from boxoffice.models.blacklist import BlacklistKind
from boxoffice.models.identity import AuditEntry, Role
from boxoffice.runtime import Runtime
from boxoffice.services import blacklist
from boxoffice.services.viewer import Viewer
from tests.helpers import make_user, viewer_for


@pytest.fixture
async def operator(rt: Runtime) -> Viewer:
    return await viewer_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))


async def is_blocked(
    rt: Runtime, user_id: str | None = None, device_id: str | None = None, ip: str | None = None
) -> BlacklistKind | None:
    return await blacklist.is_blocked(
        db=rt.db, codes=rt.backends.codes, user_id=user_id, device_id=device_id, ip=ip
    )


async def test_an_operator_adds_and_removes_entries_with_an_audit_trail(
    rt: Runtime, operator: Viewer
):
    # given a customer
    customer = await make_user(rt, "c@example.com")
    # when an operator blacklists the customer, then lifts it
    entry = await blacklist.add_entry(
        db=rt.db,
        codes=rt.backends.codes,
        viewer=operator,
        kind=BlacklistKind.USER,
        value=customer.id,
        reason="scalping",
    )
    assert (entry.kind, entry.value, entry.reason) == (BlacklistKind.USER, customer.id, "scalping")
    assert entry.created_by == operator.user_id
    assert await blacklist.remove_entry(
        db=rt.db, codes=rt.backends.codes, viewer=operator, entry_id=entry.id
    )
    # then both are in the audit log, and the entry is gone
    async with rt.db.read() as session:
        actions = (
            await session.exec(select(AuditEntry.action).where(AuditEntry.target_id == entry.id))
        ).all()
    assert sorted(actions) == ["blacklist.add", "blacklist.remove"]
    assert await blacklist.list_entries(db=rt.db, viewer=operator) == []
    with pytest.raises(NotFound):
        await blacklist.remove_entry(
            db=rt.db, codes=rt.backends.codes, viewer=operator, entry_id=entry.id
        )


async def test_only_operators_manage_the_blacklist(rt: Runtime):
    customer = await viewer_for(rt, await make_user(rt, "c@example.com"))
    with pytest.raises(Forbidden):
        await blacklist.add_entry(
            db=rt.db,
            codes=rt.backends.codes,
            viewer=customer,
            kind=BlacklistKind.IP,
            value="1.2.3.4",
        )
    with pytest.raises(Forbidden):
        await blacklist.list_entries(db=rt.db, viewer=customer)
    with pytest.raises(Forbidden):
        await blacklist.remove_entry(
            db=rt.db, codes=rt.backends.codes, viewer=customer, entry_id="x"
        )


async def test_values_are_validated_and_unique(rt: Runtime, operator: Viewer):
    async def add(kind: BlacklistKind, value: str) -> str:
        entry = await blacklist.add_entry(
            db=rt.db, codes=rt.backends.codes, viewer=operator, kind=kind, value=value
        )
        return entry.value

    # IPs are stored in one form, so every spelling of an address is one entry
    assert await add(BlacklistKind.IP, " ::ffff:192.0.2.7 ") == "192.0.2.7"
    assert await add(BlacklistKind.IP, "2001:DB8:0:0::1") == "2001:db8::1"
    with pytest.raises(AlreadyExists):
        await add(BlacklistKind.IP, "192.0.2.7")
    for kind, bad in (
        (BlacklistKind.IP, "300.1.1.1"),
        (BlacklistKind.USER, "no-such-user"),
        (BlacklistKind.DEVICE, ""),
        (BlacklistKind.DEVICE, "d" * 129),
    ):
        with pytest.raises(BadUserInput) as caught:
            await add(kind, bad)
        assert caught.value.field == "value"
    # the same value of another kind is another entry
    assert await add(BlacklistKind.DEVICE, "192.0.2.7") == "192.0.2.7"
    ips = await blacklist.list_entries(db=rt.db, viewer=operator, kind=BlacklistKind.IP)
    assert sorted(e.value for e in ips) == ["192.0.2.7", "2001:db8::1"]


async def test_concurrent_duplicates_make_one_entry(rt: Runtime, operator: Viewer):
    results = await asyncio.gather(
        *(
            blacklist.add_entry(
                db=rt.db,
                codes=rt.backends.codes,
                viewer=operator,
                kind=BlacklistKind.DEVICE,
                value="dev-1",
            )
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, BaseException))


async def test_the_check_sees_additions_and_removals_at_once(rt: Runtime, operator: Viewer):
    # given a clean device, checked (so its answer is cached)
    assert await is_blocked(rt, user_id="u1", device_id="dev-9", ip="198.51.100.1") is None
    # when an operator blacklists it
    entry = await blacklist.add_entry(
        db=rt.db, codes=rt.backends.codes, viewer=operator, kind=BlacklistKind.DEVICE, value="dev-9"
    )
    # then the next check refuses it, and repeated checks keep refusing it
    assert await is_blocked(rt, user_id="u1", device_id="dev-9", ip="198.51.100.1") == "DEVICE"
    assert await is_blocked(rt, device_id="dev-9") == BlacklistKind.DEVICE
    # and lifting it clears it at once
    await blacklist.remove_entry(
        db=rt.db, codes=rt.backends.codes, viewer=operator, entry_id=entry.id
    )
    assert await is_blocked(rt, device_id="dev-9") is None


async def test_the_check_matches_each_kind(rt: Runtime, operator: Viewer):
    customer = await make_user(rt, "c@example.com")
    for kind, value in (
        (BlacklistKind.USER, customer.id),
        (BlacklistKind.IP, "203.0.113.9"),
    ):
        await blacklist.add_entry(
            db=rt.db, codes=rt.backends.codes, viewer=operator, kind=kind, value=value
        )
    assert await is_blocked(rt, user_id=customer.id) == BlacklistKind.USER
    assert await is_blocked(rt, user_id="other", ip="::ffff:203.0.113.9") == BlacklistKind.IP
    assert await is_blocked(rt, user_id="other", ip="not-an-ip", device_id="d") is None
    assert await is_blocked(rt) is None
