"""The demo catalog: realistic, idempotent, and on sale right away."""

from __future__ import annotations

from sqlmodel import func, select

from boxoffice.clock import utcnow
from boxoffice.demo import seed_demo
from boxoffice.models.coupons import Coupon, Promotion
from boxoffice.models.events import Event, EventSession, EventStatus
from boxoffice.models.home import Banner
from boxoffice.models.venues import SeatMap, Venue
from boxoffice.runtime import Runtime
from boxoffice.services.catalog_statuses import event_status, session_status


async def test_seed_demo_builds_a_catalog_once(rt: Runtime):
    first = await seed_demo(rt)
    second = await seed_demo(rt)
    assert first == second
    now = utcnow()
    async with rt.db.read() as session:
        cities = set((await session.exec(select(Venue.city))).all())
        biggest = (await session.exec(select(func.max(SeatMap.seat_count)))).one()
        events = (await session.exec(select(Event))).all()
        sessions = (await session.exec(select(EventSession))).all()
        banners = (await session.exec(select(func.count()).select_from(Banner))).one()
    assert {"上海", "北京", "深圳"} <= cities
    assert biggest is not None and biggest >= 2000
    statuses = {e.title: event_status(e, now) for e in events}
    assert EventStatus.ON_SALE in statuses.values()
    assert EventStatus.UPCOMING in statuses.values()
    assert EventStatus.DRAFT in statuses.values()
    assert any("演唱会" in title for title in statuses)
    on_sale = [s for s in sessions if session_status(s, now).value == "ON_SALE"]
    assert any(s.queue_enabled for s in on_sale) and any(not s.queue_enabled for s in on_sale)
    assert any(s.ends_at < now for s in sessions) and any(s.starts_at > now for s in sessions)
    assert banners >= 2
    async with rt.db.read() as session:
        codes = set((await session.exec(select(Coupon.code))).all())
        promotions = (await session.exec(select(func.count()).select_from(Promotion))).one()
    assert {"WELCOME30", "LAUGH-90"} <= codes
    assert promotions == 1
