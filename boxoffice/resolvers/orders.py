"""Root fields for orders and payments."""

from __future__ import annotations

import strawberry

from boxoffice.models.orders import OrderStatus
from boxoffice.providers.payments import PaymentChannel
from boxoffice.schema.context import Info
from boxoffice.schema.orders import CreateOrderInput, Order, OrderConnection, PaymentIntent
from boxoffice.services import order_queries, orders, payments


@strawberry.type
class OrdersQuery:
    @strawberry.field(description="One of the caller's orders (or of a tenant the caller staffs).")
    async def order(self, info: Info, id: strawberry.ID) -> Order | None:
        rt = info.context.rt
        try:
            found = await orders.get_order(
                db=rt.db, viewer=await info.context.viewer(), order_id=id
            )
        except orders.NotFound:
            return None
        return Order.from_model(found)

    @strawberry.field(description="The caller's orders, newest first.")
    async def my_orders(
        self,
        info: Info,
        status: OrderStatus | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> OrderConnection:
        rt = info.context.rt
        viewer = await info.context.viewer()
        page = await order_queries.my_orders(
            db=rt.db, viewer=viewer, status=status, first=first, after=after
        )
        return OrderConnection.of(
            page,
            Order.from_model,
            total=lambda: order_queries.count_my_orders(db=rt.db, viewer=viewer, status=status),
            after=after,
        )


@strawberry.type
class OrdersMutation:
    @strawberry.mutation(
        description="Turn a hold into an unpaid order. Retrying with the same idempotencyKey "
        "returns the first result."
    )
    async def create_order(self, info: Info, input: CreateOrderInput) -> Order:
        rt = info.context.rt
        order = await orders.create_order(
            deps=rt.order_deps,
            viewer=await info.context.viewer(),
            hold_token=input.hold_token,
            idempotency_key=input.idempotency_key,
            contact_name=input.contact.name if input.contact else None,
            contact_phone=input.contact.phone if input.contact else None,
            user_coupon_id=input.user_coupon_id,
        )
        rt.metrics.count("order", "created")
        return Order.from_model(order)

    @strawberry.mutation(description="Cancel an unpaid order; its seats go back at once.")
    async def cancel_order(self, info: Info, id: strawberry.ID, reason: str | None = None) -> Order:
        rt = info.context.rt
        order = await orders.cancel_order(
            deps=rt.order_deps, viewer=await info.context.viewer(), order_id=id, reason=reason
        )
        return Order.from_model(order)

    @strawberry.mutation(description="Open a payment for an unpaid order.")
    async def start_payment(
        self, info: Info, order_id: strawberry.ID, channel: PaymentChannel
    ) -> PaymentIntent:
        rt = info.context.rt
        payment, start = await payments.start_payment(
            deps=rt.payment_deps,
            viewer=await info.context.viewer(),
            order_id=order_id,
            channel=channel,
        )
        return PaymentIntent.of(payment, start)
