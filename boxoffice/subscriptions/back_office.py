from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import strawberry

from boxoffice.backends.broker import channels
from boxoffice.schema.back_office import SalesStats
from boxoffice.schema.context import Info
from boxoffice.services import sales_stats
from boxoffice.services.sales_stats import StatsPeriod
from boxoffice.subscriptions import tracked

REFRESH_AT_MOST_EVERY = 1.0  # seconds: a burst of sales is one refresh


@strawberry.type
class BackOfficeSubscription:
    @strawberry.subscription(
        description="The tenant's sales figures now, then again whenever an order is paid or "
        "refunded (at most once a second). ORGANIZER of the tenant, OPERATOR."
    )
    async def sales_dashboard(
        self, info: Info, tenant_id: strawberry.ID, period: StatsPeriod = StatsPeriod.TODAY
    ) -> AsyncGenerator[SalesStats, None]:
        context = info.context
        rt = context.rt

        async def figures() -> SalesStats:
            viewer = await context.viewer()
            return SalesStats.of(
                await sales_stats.sales_stats(
                    db=rt.db, viewer=viewer, tenant_id=tenant_id, period=period
                )
            )

        first = await figures()  # authorization happens here, before subscribing
        async with (
            tracked(context, "salesDashboard"),
            rt.backends.broker.subscribe(channels.tenant_sales(tenant_id)) as messages,
        ):
            yield first
            iterator = messages.__aiter__()
            while True:
                await iterator.__anext__()
                await asyncio.sleep(REFRESH_AT_MOST_EVERY)  # let a burst of sales settle
                yield await figures()
