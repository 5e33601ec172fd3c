"""The waiting room's view of the catalog: which lines the ticker runs, their opening, rate
and sell-out; the admission job and its notices."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlmodel import col, select

from boxoffice import jobs
from boxoffice.backends.waiting_room import EntryStatus, QueueState
from boxoffice.clock import utcnow
from boxoffice.errors import BadUserInput, SoldOut
from boxoffice.models.events import EventStatus, TierStatus
from boxoffice.models.notifications import Notification
from boxoffice.models.outbox import OutboxEvent
from boxoffice.runtime import Runtime
from boxoffice.services import event_sessions, events, inventory, tiers, waiting_room
from boxoffice.services.notifications import notification_consumer
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.queue_events import QueueEvent, QueueSession, require_joinable
from boxoffice.services.viewer import Viewer
from tests.catalog_factories import OPERATOR, make_session
from tests.helpers import make_user, viewer_for
from tests.order_factories import hold_for
from tests.queue_factories import Clock, catalog_ticker, customers, queue_sale


def _session(
    sid: str, opens_in_hours: float, rate: int | None, closed: bool = False
) -> QueueSession:
    now = utcnow()
    return QueueSession(
        session_id=sid,
        sale_starts_at=now + timedelta(hours=opens_in_hours),
        sale_closes_at=now + timedelta(hours=-1 if closed else 48),
        admit_per_second=rate,
    )


def test_the_rate_is_the_smallest_override_of_the_selling_queue_sessions():
    def event(*sessions: QueueSession) -> QueueEvent:
        return QueueEvent("e", "t", "Show", EventStatus.ON_SALE, None, sessions)

    assert event(_session("a", -1, None)).admit_per_second(50) == 50
    assert event(_session("a", -1, 80), _session("b", 2, 30)).admit_per_second(50) == 30
    assert event(_session("a", -1, 80), _session("b", 2, None)).admit_per_second(50) == 80
    # a session whose sale has closed no longer counts, for the rate or the opening
    closed_low = event(_session("a", -1, 80), _session("b", -30, 5, closed=True))
    assert closed_low.admit_per_second(50) == 80
    assert closed_low.opens_at(utcnow()) == closed_low.sessions[0].sale_starts_at


async def test_the_ticker_runs_the_lines_of_queue_events_near_or_on_sale(rt: Runtime):
    # given an event on sale through the queue, one opening in two hours at 30/s, one opening
    # in two days, one on sale without a queue, a draft and a cancelled queue event
    now = utcnow()
    on_sale = await queue_sale(rt, title="Open")
    soon = await queue_sale(
        rt, title="Soon", sale_starts_at=now + timedelta(hours=2), admit_per_second=30
    )
    await queue_sale(rt, title="Later", sale_starts_at=now + timedelta(days=2))
    plain = await queue_sale(rt, title="Plain")
    await event_sessions.update_session(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=plain.session.id,
        queue_enabled=False,
    )
    await queue_sale(rt, title="Draft", published=False)
    cancelled = await queue_sale(rt, title="Cancelled")
    await events.cancel_event(
        db=rt.db, cache=rt.catalog_cache, viewer=OPERATOR, event_id=cancelled.event.id
    )
    # when the ticker asks the catalog
    _ticker, catalog = catalog_ticker(rt, Clock(time.time()))
    schedules = {s.event_id: s for s in await catalog()}
    # then exactly the first two are scheduled, with their opening and rate
    assert set(schedules) == {on_sale.event.id, soon.event.id}
    assert schedules[on_sale.event.id].admit_per_second == rt.settings.queue_admit_per_second
    assert schedules[on_sale.event.id].opens_at == on_sale.session.sale_starts_at
    assert schedules[soon.event.id].admit_per_second == 30
    assert abs(schedules[soon.event.id].opens_at - (now + timedelta(hours=2))) < timedelta(
        seconds=1
    )
    assert not any(s.sold_out for s in schedules.values())


async def test_the_line_opens_at_the_earliest_sale_of_its_queue_sessions(rt: Runtime):
    # given a queue event whose sale starts in 10 minutes, and early arrivals
    starts = utcnow() + timedelta(minutes=10)
    sale = await queue_sale(rt, sale_starts_at=starts)
    room = rt.backends.waiting_room
    for user in ("a", "b", "c"):
        await room.join(sale.event.id, user, now=time.time())
    clock = Clock(time.time())
    ticker, _catalog = catalog_ticker(rt, clock)
    # when the ticker ticks before the sale, then at its start
    (before,) = await ticker.tick()
    clock.now = starts.timestamp()
    (opened,) = await ticker.tick()
    # then the line waits, then opens and admits the drawn arrivals
    assert (before.state, before.admitted) == (QueueState.PENDING, ())
    assert opened.state is QueueState.OPEN
    assert sorted(u for u, _ in opened.admitted) == ["a", "b", "c"]
    assert [seq for _, seq in opened.admitted] == [1, 2, 3]


async def test_a_sold_out_event_closes_its_line_and_reopens_when_seats_return(rt: Runtime):
    # given a queue event with 2 units, a ticker, and three in line
    sale = await queue_sale(rt, capacity=2)
    room = rt.backends.waiting_room
    clock = Clock(time.time())
    ticker, _catalog = catalog_ticker(rt, clock)
    await ticker.tick()
    for user in ("w1", "w2", "w3"):
        await room.join(sale.event.id, user, now=clock.now)
    # when a buyer holds both units
    buyer = await make_user(rt, "buyer@example.com")
    token = rt.queue_tokens.issue(user_id=buyer.id, event_id=sale.event.id).token
    hold = await hold_for(
        rt, buyer, sale.session, tier_id=sale.tier.id, quantity=2, queue_token=token
    )
    clock.now += 1
    (closed,) = await ticker.tick()
    # then the line is closed: nobody admitted, newcomers and the waiting answer SOLD_OUT
    assert (closed.state, closed.admitted) == (QueueState.CLOSED, ())
    with pytest.raises(SoldOut):
        await room_join(rt, sale.event.id, "newcomer")
    # when the hold is given back
    await inventory.release_hold(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        viewer=await viewer_for(rt, buyer),
        token=hold.token,
    )
    clock.now += 1
    (reopened,) = await ticker.tick()
    # then the line opens again where it stopped
    assert reopened.state is QueueState.OPEN
    assert [u for u, _ in reopened.admitted] == ["w1", "w2", "w3"]


async def room_join(rt: Runtime, event_id: str, user_id: str) -> None:
    await waiting_room.join_queue(
        db=rt.db,
        room=rt.backends.waiting_room,
        rate_limiter=rt.backends.rate_limiter,
        codes=rt.backends.codes,
        tokens=rt.queue_tokens,
        user_id=user_id,
        event_id=event_id,
        device_id=f"dev-{user_id}",
        ip=None,
        admit_per_second=10,
    )


async def test_only_active_tiers_decide_a_sell_out(rt: Runtime):
    # given a queue event whose only active tier is sold out (held) beside a disabled tier
    sale = await queue_sale(rt, capacity=1)
    spare = await tiers.create_tier(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=sale.session.id,
        name="Spare",
        price=Decimal("180.00"),
        capacity=50,
        status=TierStatus.DISABLED,
    )
    assert spare.status == TierStatus.DISABLED
    buyer = await make_user(rt, "one@example.com")
    token = rt.queue_tokens.issue(user_id=buyer.id, event_id=sale.event.id).token
    await hold_for(rt, buyer, sale.session, tier_id=sale.tier.id, quantity=1, queue_token=token)
    # when the ticker asks the catalog
    _ticker, catalog = catalog_ticker(rt, Clock(time.time()))
    (schedule,) = await catalog()
    # then the event counts as sold out
    assert schedule.sold_out


async def test_a_second_queue_session_with_seats_keeps_the_line_open(rt: Runtime):
    # given a sold-out queue session and a second queue session of the event with seats
    sale = await queue_sale(rt, capacity=1)
    second = await make_session(rt, sale.event, starts_at=utcnow() + timedelta(days=9))
    await event_sessions.update_session(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=second.id,
        queue_enabled=True,
    )
    await tiers.create_tier(
        db=rt.db,
        cache=rt.catalog_cache,
        viewer=OPERATOR,
        session_id=second.id,
        name="GA",
        price=Decimal("180.00"),
        capacity=5,
    )
    buyer = await make_user(rt, "one@example.com")
    token = rt.queue_tokens.issue(user_id=buyer.id, event_id=sale.event.id).token
    await hold_for(rt, buyer, sale.session, tier_id=sale.tier.id, quantity=1, queue_token=token)
    # then the event is not sold out
    _ticker, catalog = catalog_ticker(rt, Clock(time.time()))
    (schedule,) = await catalog()
    assert not schedule.sold_out


async def test_an_event_takes_arrivals_while_a_queue_session_sells(rt: Runtime):
    # given a queue event whose only session starts in a week (its sale closes then)
    sale = await queue_sale(rt)
    anyone = Viewer(user_id="u")
    found = await rt.queue_events.get(sale.event.id, viewer=anyone)
    starts = sale.session.starts_at
    # then it takes arrivals now, not once the sale closed, and not once the event is over
    assert require_joinable(found, viewer=anyone) == found
    with pytest.raises(BadUserInput) as closed:
        require_joinable(found, viewer=anyone, now=starts + timedelta(minutes=1))
    assert closed.value.details == {"field": "eventId", "reason": "QUEUE_NOT_ENABLED"}
    with pytest.raises(BadUserInput) as over:
        require_joinable(found, viewer=anyone, now=starts + timedelta(hours=3))
    assert over.value.details == {"field": "eventId", "reason": "NOT_ON_SALE"}


async def test_the_admission_job_admits_and_tells_the_admitted(rt: Runtime):
    # given a queue event on sale and three customers in its line
    sale = await queue_sale(rt)
    fans = await customers(rt, 3)
    assert "queue-admission" in [job.name for job in jobs.all_jobs()]
    await jobs.admit_queues(rt)  # opens the line
    for user, _token in fans:
        await rt.backends.waiting_room.join(sale.event.id, user.id, now=time.time())
    # when the job runs again
    admitted = await jobs.admit_queues(rt)
    # then all three are in, each told once through the outbox
    assert admitted == 3
    for user, _token in fans:
        entry = await rt.backends.waiting_room.status(sale.event.id, user.id)
        assert entry is not None and entry.status is EntryStatus.ADMITTED
    async with rt.db.read() as session:
        notices = (
            await session.exec(select(OutboxEvent).where(OutboxEvent.topic == "queue.admitted"))
        ).all()
    assert sorted(n.payload["userId"] for n in notices) == sorted(u.id for u, _ in fans)
    resource = notices[0].payload["resource"]
    assert resource["eventId"] == sale.event.id and resource["status"] == "ADMITTED"
    assert resource["queueToken"] is None and resource["eventTitle"] == "Hot Show"
    until = datetime.fromisoformat(resource["expiresAt"])
    assert until > datetime.now(UTC) + timedelta(
        seconds=rt.settings.queue_admission_window_seconds - 60
    )
    assert {n.tenant_id for n in notices} == {sale.tenant.id}
    # and the notification consumer turns them into messages
    await dispatch_once(rt, notification_consumer())
    async with rt.db.read() as session:
        messages = (
            await session.exec(
                select(Notification).where(col(Notification.topic) == "queue.admitted")
            )
        ).all()
    assert sorted({m.user_id for m in messages}) == sorted(u.id for u, _ in fans)
    assert all("Hot Show" in m.body for m in messages)
    # and a job run with nobody left to admit writes nothing more
    assert await jobs.admit_queues(rt) == 0
    async with rt.db.read() as session:
        total = (
            await session.exec(select(OutboxEvent).where(OutboxEvent.topic == "queue.admitted"))
        ).all()
    assert len(total) == 3


async def test_the_job_ticks_at_the_configured_interval(rt: Runtime):
    (job,) = [j for j in jobs.all_jobs() if j.name == "queue-admission"]
    assert job.every(rt.settings) == rt.settings.queue_tick_seconds
    assert job.every(rt.settings.model_copy(update={"queue_tick_seconds": 0.25})) == 0.25
