"""The home page: banners by place and schedule, recommended slots topped up by popularity,
upcoming events by their next session, sales opening soon; tenant homes stay their own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
from sqlmodel import col, update

from boxoffice.clock import utcnow
from boxoffice.models.events import Event
from boxoffice.models.identity import Role
from boxoffice.runtime import Runtime
from tests.catalog_factories import make_published_event, make_venue
from tests.helpers import gql, make_tenant, make_user, token_for

HOME = """query($city: String, $t: ID) { home(city: $city, tenantId: $t) {
  banners { title city tenantId event { title } }
  recommended { title } upcoming { title } onSaleSoon { title saleStartsAt } } }"""
BANNER = "mutation($i: CreateBannerInput!) { createBanner(input: $i) { id } }"
SLOT = "mutation($i: CreateRecommendationInput!) { createRecommendation(input: $i) { id } }"


def _titles(items: list[dict[str, Any]]) -> list[str]:
    return [item["title"] for item in items]


async def test_home_page(client: httpx.AsyncClient, rt: Runtime):
    # given two tenants' events in two cities, some on sale, one opening later
    a = await make_tenant(rt, "Club")
    b = await make_tenant(rt, "Promoter")
    shanghai = await make_venue(rt, a, "Club Hall", "上海")
    beijing = await make_venue(rt, b, "Arena", "北京")
    now = utcnow()
    soon = await make_published_event(
        rt, a, shanghai, "Soon Show", starts_at=now + timedelta(days=2)
    )
    await make_published_event(rt, a, shanghai, "Later Show", starts_at=now + timedelta(days=9))
    await make_published_event(
        rt,
        a,
        shanghai,
        "Presale Show",
        starts_at=now + timedelta(days=30),
        sale_starts_at=now + timedelta(days=3),
    )
    big = await make_published_event(
        rt, b, beijing, "Arena Concert", starts_at=now + timedelta(days=5)
    )
    async with rt.db.write() as session:
        await session.exec(update(Event).where(col(Event.id) == big.id).values(want_count=99))
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    organizer = await token_for(rt, await make_user(rt, "o@club.example", Role.ORGANIZER, a))
    for banner in (
        {"title": "Everywhere", "imageUrl": "https://img/1.png", "sortOrder": 2},
        {
            "title": "Shanghai only",
            "imageUrl": "https://img/2.png",
            "city": "上海",
            "eventId": soon.id,
            "sortOrder": 1,
        },
        {
            "title": "Expired",
            "imageUrl": "https://img/3.png",
            "endsAt": (now - timedelta(hours=1)).isoformat(),
        },
        {
            "title": "Future",
            "imageUrl": "https://img/4.png",
            "startsAt": (now + timedelta(days=1)).isoformat(),
        },
    ):
        assert not (await gql(client, BANNER, {"i": banner}, token=operator)).errors
    club_banner = {"title": "Club news", "imageUrl": "https://img/5.png", "tenantId": a.id}
    assert not (await gql(client, BANNER, {"i": club_banner}, token=organizer)).errors
    slot = {"eventId": soon.id, "reason": "编辑推荐"}
    assert not (await gql(client, SLOT, {"i": slot}, token=operator)).errors

    # when the platform home of Shanghai is read
    home = (await gql(client, HOME, {"city": "上海"})).data["home"]
    # then banners are the platform's, for this city or all, in their order and window
    assert _titles(home["banners"]) == ["Shanghai only", "Everywhere"]
    assert home["banners"][0]["event"]["title"] == "Soon Show"
    # recommended: the slot first, then the most wanted of the city
    assert _titles(home["recommended"])[0] == "Soon Show"
    assert set(_titles(home["recommended"])) == {"Soon Show", "Later Show", "Presale Show"}
    # upcoming by next session, on-sale-soon by sale start
    assert _titles(home["upcoming"]) == ["Soon Show", "Later Show", "Presale Show"]
    assert _titles(home["onSaleSoon"]) == ["Presale Show"]

    # the platform home without a city shows all cities, most wanted first after slots
    everywhere = (await gql(client, HOME, {})).data["home"]
    assert _titles(everywhere["recommended"])[:2] == ["Soon Show", "Arena Concert"]
    assert _titles(everywhere["banners"]) == ["Everywhere"]

    # a tenant's home shows its own banners and events only
    club = (await gql(client, HOME, {"t": a.id})).data["home"]
    assert _titles(club["banners"]) == ["Club news"]
    assert "Arena Concert" not in _titles(club["upcoming"]) + _titles(club["recommended"])


async def test_only_operators_place_platform_banners(client: httpx.AsyncClient, rt: Runtime):
    a = await make_tenant(rt, "A")
    b = await make_tenant(rt, "B")
    organizer = await token_for(rt, await make_user(rt, "o@a.example", Role.ORGANIZER, a))
    banner = {"title": "Mine", "imageUrl": "https://img/1.png"}
    assert (await gql(client, BANNER, {"i": banner}, token=organizer)).code == "FORBIDDEN"
    elsewhere = {**banner, "tenantId": b.id}
    assert (await gql(client, BANNER, {"i": elsewhere}, token=organizer)).code == "NOT_FOUND"
    bad = {**banner, "tenantId": a.id, "imageUrl": "javascript:alert(1)"}
    result = await gql(client, BANNER, {"i": bad}, token=organizer)
    assert result.code == "BAD_USER_INPUT" and result.error["extensions"]["field"] == "imageUrl"
    now = utcnow()
    backwards = {
        **banner,
        "tenantId": a.id,
        "startsAt": now.isoformat(),
        "endsAt": (now - timedelta(days=1)).isoformat(),
    }
    result = await gql(client, BANNER, {"i": backwards}, token=organizer)
    assert result.code == "BAD_USER_INPUT" and result.error["extensions"]["field"] == "endsAt"
