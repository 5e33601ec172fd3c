"""The event calendar: sessions grouped by local day (Asia/Shanghai by default)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from boxoffice.runtime import Runtime
from tests.catalog_factories import (
    make_event,
    make_published_event,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import gql, make_tenant

CALENDAR = """query($y: Int!, $m: Int!, $t: ID, $c: String, $z: String!) {
  eventCalendar(year: $y, month: $m, tenantId: $t, city: $c, timeZone: $z) {
    date count events { title } sessions { startsAt } } }"""
CST = timezone(timedelta(hours=8))


async def test_days_of_a_month_in_local_time(client: httpx.AsyncClient, rt: Runtime):
    # given shows in March 2031, one starting at 07:30 Beijing time (23:30 UTC the day before)
    a = await make_tenant(rt, "A")
    b = await make_tenant(rt, "B")
    shanghai = await make_venue(rt, a, "Hall", "上海")
    beijing = await make_venue(rt, b, "Arena", "北京")
    sale = datetime(2031, 1, 1, tzinfo=CST)
    early = await make_event(rt, a, shanghai, "Morning Show")
    await make_tier(
        rt,
        await make_session(
            rt, early, starts_at=datetime(2031, 3, 2, 7, 30, tzinfo=CST), sale_starts_at=sale
        ),
    )
    await make_tier(
        rt,
        await make_session(
            rt, early, starts_at=datetime(2031, 3, 2, 20, 0, tzinfo=CST), sale_starts_at=sale
        ),
    )
    await publish(rt, early)
    await make_published_event(
        rt,
        b,
        beijing,
        "Night Show",
        starts_at=datetime(2031, 3, 2, 21, 0, tzinfo=CST),
        sale_starts_at=sale,
    )
    await make_published_event(
        rt,
        a,
        shanghai,
        "April Show",
        starts_at=datetime(2031, 4, 1, 0, 30, tzinfo=CST),
        sale_starts_at=sale,
    )
    draft = await make_event(rt, a, shanghai, "Draft Show")
    await make_session(
        rt, draft, starts_at=datetime(2031, 3, 5, 20, 0, tzinfo=CST), sale_starts_at=sale
    )

    # when March is asked for
    days = (await gql(client, CALENDAR, {"y": 2031, "m": 3, "z": "Asia/Shanghai"})).data[
        "eventCalendar"
    ]
    # then one day holds both events and all three sessions; drafts and April stay out
    assert [d["date"] for d in days] == ["2031-03-02"]
    assert days[0]["count"] == 2
    assert [e["title"] for e in days[0]["events"]] == ["Morning Show", "Night Show"]
    assert len(days[0]["sessions"]) == 3
    # and filters by city and tenant apply
    beijing_days = (
        await gql(client, CALENDAR, {"y": 2031, "m": 3, "c": "北京", "z": "Asia/Shanghai"})
    ).data["eventCalendar"]
    assert [e["title"] for d in beijing_days for e in d["events"]] == ["Night Show"]
    tenant_days = (
        await gql(client, CALENDAR, {"y": 2031, "m": 3, "t": a.id, "z": "Asia/Shanghai"})
    ).data["eventCalendar"]
    assert [e["title"] for d in tenant_days for e in d["events"]] == ["Morning Show"]
    # in UTC the morning show falls on March 1, and April's 00:30 show on March 31
    utc_days = (await gql(client, CALENDAR, {"y": 2031, "m": 3, "z": "UTC"})).data["eventCalendar"]
    assert [d["date"] for d in utc_days] == ["2031-03-01", "2031-03-02", "2031-03-31"]
    # April's show at 00:30 local is in April
    april = (await gql(client, CALENDAR, {"y": 2031, "m": 4, "z": "Asia/Shanghai"})).data[
        "eventCalendar"
    ]
    assert [d["date"] for d in april] == ["2031-04-01"]


async def test_calendar_inputs(client: httpx.AsyncClient):
    for variables, field in (
        ({"y": 2031, "m": 13, "z": "Asia/Shanghai"}, "month"),
        ({"y": 1999, "m": 1, "z": "Asia/Shanghai"}, "year"),
        ({"y": 2031, "m": 1, "z": "Mars/Olympus"}, "timeZone"),
    ):
        result = await gql(client, CALENDAR, variables)
        assert result.code == "BAD_USER_INPUT" and result.error["extensions"]["field"] == field
