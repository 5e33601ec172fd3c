"""The demo catalog ``seed-demo`` builds for the two demo tenants: venues in 上海, 北京,
深圳 and 广州 (one arena map of 2,400 seats), stand-up shows and concerts (fictional names),
past and future sessions, sessions on sale now (some behind the waiting room), a sale opening
later, banners and a recommended slot.

Idempotent: venues are found by (tenant, name) and events by (tenant, title); an existing
event is left as it is. Times are relative to the first run.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.models.events import Event, EventStatus
from boxoffice.models.home import Banner, Recommendation
from boxoffice.models.identity import Role, Tenant, User
from boxoffice.models.venues import SeatMap, Venue
from boxoffice.runtime import Runtime
from boxoffice.services import banners, event_sessions, events, recommendations, seat_maps, tiers
from boxoffice.services import venues as venue_service
from boxoffice.services.seat_maps import RowRangeSpec, RowSpec, SeatSpec, SectionSpec
from boxoffice.services.viewer import Viewer

CST = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class DemoVenue:
    name: str
    city: str
    address: str
    sections: tuple[SectionSpec, ...] = ()


@dataclass(frozen=True)
class DemoTier:
    name: str
    price: str
    capacity: int | None = None
    sections: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoSession:
    days: int  # from today (or from the next ``weekday``), local date
    at: time
    sale_opens_in: timedelta = timedelta(days=-7)
    queue: bool = False
    weekday: int | None = None  # 0 = Monday


@dataclass(frozen=True)
class DemoEvent:
    tenant: int
    venue: str
    title: str
    category: str
    performers: tuple[str, ...]
    tags: tuple[str, ...]
    description: str
    sessions: tuple[DemoSession, ...]
    tiers: tuple[DemoTier, ...]
    publish: bool = True
    extra: dict[str, str] = field(default_factory=dict)


ARENA = tuple(
    SectionSpec(name, row_ranges=[RowRangeSpec("A", "T", 30)])
    for name in ("A区", "B区", "C区", "D区")
)
CLUB = (
    SectionSpec(
        "池座",
        rows=[RowSpec(str(n), 14) for n in range(1, 9)],
        seats=[SeatSpec("9", 1, wheelchair=True), SeatSpec("9", 2, companion=True)],
    ),
    SectionSpec("楼座", rows=[RowSpec(str(n), 12) for n in range(1, 4)]),
)
THEATRE = (
    SectionSpec("一层", row_ranges=[RowRangeSpec("1", "18", 24)]),
    SectionSpec("二层", row_ranges=[RowRangeSpec("1", "8", 20)]),
)

VENUES: dict[int, tuple[DemoVenue, ...]] = {
    0: (
        DemoVenue("Laugh Lab 静安剧场", "上海", "上海市静安区南京西路 1 号", CLUB),
        DemoVenue("Laugh Lab 三里屯小剧场", "北京", "北京市朝阳区三里屯路 19 号"),
    ),
    1: (
        DemoVenue("星光体育馆", "上海", "上海市浦东新区世博大道 1200 号", ARENA),
        DemoVenue("深圳湾体育中心", "深圳", "深圳市南山区滨海大道 3001 号"),
        DemoVenue("星光大剧院", "北京", "北京市西城区长安街 2 号", THEATRE),
        DemoVenue("广州海心沙", "广州", "广州市天河区海心沙岛"),
    ),
}

EVENTS = (
    DemoEvent(
        0,
        "Laugh Lab 静安剧场",
        "周五夜 脱口秀专场",
        "STANDUP",
        ("李小雷", "韩梅", "王大锤"),
        ("脱口秀", "喜剧", "周末"),
        "每周五晚的招牌专场，五位演员各 15 分钟新段子。",
        (
            DemoSession(-7, time(20, 0), timedelta(days=-20), weekday=4),
            DemoSession(0, time(20, 0), weekday=4),
            DemoSession(7, time(20, 0), weekday=4),
            DemoSession(14, time(20, 0), weekday=4),
        ),
        (
            DemoTier("池座", "180.00", sections=("池座",)),
            DemoTier("楼座", "120.00", sections=("楼座",)),
        ),
    ),
    DemoEvent(
        0,
        "Laugh Lab 三里屯小剧场",
        "即兴喜剧之夜 Improv Night",
        "STANDUP",
        ("Improv Lab 剧团",),
        ("即兴", "英文", "comedy"),
        "No script, all laughs: an improv show in Chinese and English.",
        (DemoSession(3, time(19, 30)), DemoSession(10, time(19, 30))),
        (DemoTier("早鸟票", "99.00", capacity=60), DemoTier("正价票", "139.00", capacity=90)),
    ),
    DemoEvent(
        0,
        "Laugh Lab 静安剧场",
        "新人开放麦 Open Mic",
        "STANDUP",
        ("新人演员",),
        ("开放麦", "新人"),
        "新人演员的第一次登台，票价友好。",
        (DemoSession(5, time(21, 0)),),
        (
            DemoTier("池座", "49.00", sections=("池座",)),
            DemoTier("楼座", "29.00", sections=("楼座",)),
        ),
    ),
    DemoEvent(
        1,
        "星光体育馆",
        "陈星河 嘉年华 2027 巡回演唱会 · 上海站",
        "CONCERT",
        ("陈星河",),
        ("流行", "巡演", "演唱会"),
        "陈星河「嘉年华」世界巡回演唱会上海站，两场连演。",
        (
            DemoSession(45, time(19, 30), timedelta(hours=-1), queue=True),
            DemoSession(46, time(19, 30), timedelta(hours=-1), queue=True),
        ),
        (
            DemoTier("VIP 内场", "1280.00", sections=("A区",)),
            DemoTier("看台 880", "880.00", sections=("B区",)),
            DemoTier("看台 580", "580.00", sections=("C区",)),
            DemoTier("看台 380", "380.00", sections=("D区",)),
        ),
    ),
    DemoEvent(
        1,
        "深圳湾体育中心",
        "陈星河 嘉年华 2027 巡回演唱会 · 深圳站",
        "CONCERT",
        ("陈星河",),
        ("流行", "巡演", "演唱会"),
        "深圳站，开票前可先标记想看。",
        (DemoSession(60, time(19, 30), timedelta(days=3), queue=True),),
        (DemoTier("内场", "980.00", capacity=3000), DemoTier("看台", "480.00", capacity=9000)),
    ),
    DemoEvent(
        1,
        "星光大剧院",
        "经典话剧《雷雨》",
        "THEATRE",
        ("星光话剧团",),
        ("话剧", "经典"),
        "曹禺经典，全新复排。",
        (
            DemoSession(12, time(19, 30)),
            DemoSession(13, time(14, 0)),
            DemoSession(13, time(19, 30)),
        ),
        (
            DemoTier("一层", "380.00", sections=("一层",)),
            DemoTier("二层", "180.00", sections=("二层",)),
        ),
    ),
    DemoEvent(
        1,
        "广州海心沙",
        "林间乐队 夏日音乐节",
        "CONCERT",
        ("林间乐队", "南方以南"),
        ("音乐节", "户外", "独立"),
        "江边的两天户外音乐节。",
        (DemoSession(25, time(15, 0)), DemoSession(26, time(15, 0))),
        (
            DemoTier("单日票", "260.00", capacity=8000),
            DemoTier("两日通票", "460.00", capacity=4000),
        ),
    ),
    DemoEvent(
        1,
        "星光体育馆",
        "星光新年音乐会（筹备中）",
        "CONCERT",
        ("星光交响乐团",),
        ("新年", "古典"),
        "草稿：尚未发布。",
        (),
        (),
        publish=False,
    ),
)

BANNERS = (
    ("陈星河 嘉年华 上海站 火热开票", "https://demo.boxoffice.dev/banners/chenxinghe.jpg", None, 3),
    ("周五夜 脱口秀专场 每周开演", "https://demo.boxoffice.dev/banners/friday.jpg", 0, 0),
)


def _local(spec: DemoSession) -> datetime:
    day = utcnow().astimezone(CST).date()
    if spec.weekday is not None:
        day += timedelta(days=(spec.weekday - day.weekday()) % 7 or 7)
    return datetime.combine(day + timedelta(days=spec.days), spec.at, tzinfo=CST)


async def _venue(rt: Runtime, viewer: Viewer, tenant: Tenant, spec: DemoVenue) -> Venue:
    async with rt.db.read() as session:
        found = (
            await session.exec(
                select(Venue).where(Venue.tenant_id == tenant.id, Venue.name == spec.name)
            )
        ).first()
    if found is not None:
        return found
    venue = await venue_service.create_venue(
        db=rt.db,
        viewer=viewer,
        tenant_id=tenant.id,
        name=spec.name,
        city=spec.city,
        address=spec.address,
    )
    if spec.sections:
        await seat_maps.create_seat_map(
            db=rt.db, viewer=viewer, venue_id=venue.id, name="主场馆", sections=spec.sections
        )
    return venue


async def _event(
    rt: Runtime, viewer: Viewer, tenant: Tenant, venue: Venue, spec: DemoEvent
) -> Event:
    async with rt.db.read() as session:
        found = (
            await session.exec(
                select(Event).where(Event.tenant_id == tenant.id, Event.title == spec.title)
            )
        ).first()
        seat_map = (
            await session.exec(
                select(SeatMap)
                .where(SeatMap.venue_id == venue.id)
                .order_by(col(SeatMap.created_at))
            )
        ).first()
    if found is not None:
        return found
    cache = rt.catalog_cache
    event = await events.create_event(
        db=rt.db,
        viewer=viewer,
        tenant_id=tenant.id,
        title=spec.title,
        category=spec.category,
        city=venue.city,
        venue_id=venue.id,
        description=spec.description,
        performers=spec.performers,
        tags=spec.tags,
        poster_url=f"https://demo.boxoffice.dev/posters/{zlib.crc32(spec.title.encode())}.jpg",
    )
    seated = any(t.sections for t in spec.tiers)
    for demo_session in spec.sessions:
        starts = _local(demo_session)
        created = await event_sessions.create_session(
            db=rt.db,
            cache=cache,
            viewer=viewer,
            event_id=event.id,
            starts_at=starts,
            ends_at=starts + timedelta(hours=2, minutes=30),
            sale_starts_at=min(utcnow() + demo_session.sale_opens_in, starts - timedelta(hours=1)),
            seat_map_id=seat_map.id if seated and seat_map else None,
            queue_enabled=demo_session.queue,
            purchase_limit=6 if demo_session.queue else None,
        )
        for order, tier in enumerate(spec.tiers):
            await tiers.create_tier(
                db=rt.db,
                cache=cache,
                viewer=viewer,
                session_id=created.id,
                name=tier.name,
                price=Decimal(tier.price),
                capacity=tier.capacity,
                sections=list(tier.sections),
                limit_per_order=4 if demo_session.queue else 6,
                sort_order=order,
            )
    if spec.publish:
        event = await events.publish_event(db=rt.db, cache=cache, viewer=viewer, event_id=event.id)
    return event


async def _placements(
    rt: Runtime, viewer: Viewer, tenants: list[Tenant], shown: list[Event]
) -> None:
    async with rt.db.read() as session:
        placed = set((await session.exec(select(Banner.title))).all())
        slotted = set((await session.exec(select(Recommendation.event_id))).all())
    for title, image, tenant_index, event_index in BANNERS:
        if title in placed:
            continue
        await banners.create_banner(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=viewer,
            title=title,
            image_url=image,
            event_id=shown[event_index].id,
            tenant_id=tenants[tenant_index].id if tenant_index is not None else None,
        )
    headline = shown[3]
    if headline.id not in slotted and headline.status != EventStatus.DRAFT:
        await recommendations.create_recommendation(
            db=rt.db,
            cache=rt.catalog_cache,
            viewer=viewer,
            event_id=headline.id,
            reason="编辑推荐",
        )


async def seed_catalog(rt: Runtime, tenants: list[Tenant], operator: User) -> list[str]:
    """Create (or find) the demo catalog; return the lines to print."""
    viewer = Viewer(user_id=operator.id, roles=frozenset({Role.OPERATOR}))
    venues: dict[str, Venue] = {}
    for tenant_index, specs in VENUES.items():
        for spec in specs:
            venues[spec.name] = await _venue(rt, viewer, tenants[tenant_index], spec)
    made = [
        await _event(rt, viewer, tenants[spec.tenant], venues[spec.venue], spec) for spec in EVENTS
    ]
    await _placements(rt, viewer, tenants, made)
    lines = [f"venue   {v.id}  {v.city} {v.name}" for v in venues.values()]
    lines += [f"event   {e.id}  {e.city} {e.title}" for e in made]
    return lines
