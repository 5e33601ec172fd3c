"""The live-users backstop: a removed user is refused, a known one is not kept waiting."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import delete

from boxoffice.errors import Unauthenticated
from boxoffice.models.identity import User
from boxoffice.runtime import Runtime
from boxoffice.services.live_users import LiveUsers
from tests.helpers import make_user


async def remove(rt: Runtime, user_id: str) -> None:
    async with rt.db.write() as session:
        await session.exec(delete(User).where(User.id == user_id))  # type: ignore[call-overload]


async def test_a_removed_user_is_refused_once_the_background_check_ran(rt: Runtime):
    # given a user seen once, whose entry is stale at once (no fresh window)
    live = LiveUsers(ttl_seconds=0.0, stale_seconds=60.0)
    user = await make_user(rt, "stale@example.com")
    await live.require(rt.db, user.id)
    # when the user is removed and asks again
    await remove(rt, user.id)
    await live.require(rt.db, user.id)  # passes: answered from memory, checked behind it
    await live.settled()
    # then from the check on, the user is refused
    with pytest.raises(Unauthenticated) as refused:
        await live.require(rt.db, user.id)
    assert refused.value.extensions()["reason"] == "USER_UNKNOWN"


async def test_a_stale_entry_is_checked_once_however_many_ask(rt: Runtime):
    live = LiveUsers(ttl_seconds=0.0, stale_seconds=60.0)
    user = await make_user(rt, "many@example.com")
    await live.require(rt.db, user.id)
    await asyncio.gather(*(live.require(rt.db, user.id) for _ in range(20)))
    assert len(live._checking) == 1
    await live.settled()
    assert live.knows(user.id)  # still there: checked again


async def test_past_the_stale_window_and_for_strangers_the_request_waits(rt: Runtime):
    # given no stale window at all
    live = LiveUsers(ttl_seconds=0.0, stale_seconds=0.0)
    user = await make_user(rt, "strict@example.com")
    await live.require(rt.db, user.id)
    # when the user is removed, then the very next request is refused
    await remove(rt, user.id)
    with pytest.raises(Unauthenticated):
        await live.require(rt.db, user.id)
    # and a user never seen is read at once, and refused when unknown
    with pytest.raises(Unauthenticated):
        await LiveUsers().require(rt.db, "nobody-at-all")
