from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from boxoffice.backends.broker import channels
from boxoffice.models.orders import OrderStatus
from boxoffice.schema.context import Info
from boxoffice.schema.orders import Order
from boxoffice.services import orders
from boxoffice.subscriptions import tracked

FINAL = frozenset(
    {OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REFUNDED, OrderStatus.COMPLETED}
)


@strawberry.type
class OrdersSubscription:
    @strawberry.subscription(
        description="The caller's order now, then after every status change; ends when the "
        "order can no longer change."
    )
    async def order_updates(
        self, info: Info, order_id: strawberry.ID
    ) -> AsyncGenerator[Order, None]:
        context = info.context
        rt = context.rt
        viewer = await context.viewer()
        current = await orders.get_order(db=rt.db, viewer=viewer, order_id=order_id)
        async with (
            tracked(context, "orderUpdates"),
            rt.backends.broker.subscribe(channels.order(current.id)) as messages,
        ):
            # re-read after subscribing: a change in between is not missed
            current = await orders.get_order(db=rt.db, viewer=viewer, order_id=order_id)
            last = current.status
            yield Order.from_model(current)
            if last in FINAL:
                return
            async for _message in messages:
                current = await orders.get_order(db=rt.db, viewer=viewer, order_id=order_id)
                if current.status == last:
                    continue
                last = current.status
                yield Order.from_model(current)
                if last in FINAL:
                    return
