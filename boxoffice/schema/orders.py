"""GraphQL types of orders and payments."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from boxoffice.models import orders as m
from boxoffice.pii import mask_name
from boxoffice.providers.messaging import mask_recipient
from boxoffice.providers.payments import PaymentChannel, PaymentStart
from boxoffice.schema.context import Info
from boxoffice.schema.money import Money
from boxoffice.schema.pagination import Connection
from boxoffice.schema.tickets import Ticket
from boxoffice.services.order_queries import sees_buyer_phone

for _enum in (m.OrderStatus, m.SalesChannel, m.ItemStatus, m.PaymentStatus, PaymentChannel):
    strawberry.enum(_enum)


@strawberry.type
class Contact:
    _order: strawberry.Private[m.Order]

    @strawberry.field(description="Whole to the buyer, the tenant's organizers and operators.")
    async def name(self, info: Info) -> str | None:
        value = self._order.contact_name
        if value is None or sees_buyer_phone(await info.context.viewer(), self._order):
            return value
        return mask_name(value)

    @strawberry.field(description="Whole to the buyer, the tenant's organizers and operators.")
    async def phone(self, info: Info) -> str | None:
        value = self._order.contact_phone
        if value is None or sees_buyer_phone(await info.context.viewer(), self._order):
            return value
        return mask_recipient(value)


@strawberry.type
class OrderItem:
    id: strawberry.ID
    tier_id: strawberry.ID
    tier_name: str
    seat_id: strawberry.ID | None
    seat_label: str | None
    unit_price: Money
    discount: Money
    price: Money = strawberry.field(description="What this unit cost after discounts.")
    status: m.ItemStatus

    @classmethod
    def from_model(cls, item: m.OrderItem, currency: str) -> OrderItem:
        return cls(
            id=strawberry.ID(item.id),
            tier_id=strawberry.ID(item.tier_id),
            tier_name=item.tier_name,
            seat_id=strawberry.ID(item.seat_id) if item.seat_id else None,
            seat_label=item.seat_label,
            unit_price=Money.from_minor(item.unit_price_minor, currency),
            discount=Money.from_minor(item.discount_minor, currency),
            price=Money.from_minor(item.unit_price_minor - item.discount_minor, currency),
            status=item.status,
        )


@strawberry.type
class Payment:
    payment_no: str
    channel: str
    amount: Money
    status: m.PaymentStatus
    paid_at: datetime | None
    created_at: datetime

    @classmethod
    def from_model(cls, payment: m.Payment) -> Payment:
        return cls(
            payment_no=payment.payment_no,
            channel=payment.channel,
            amount=Money.from_minor(payment.amount_minor, payment.currency),
            status=payment.status,
            paid_at=payment.paid_at,
            created_at=payment.created_at,
        )


@strawberry.type(description="An order: unpaid until `expiresAt`, then paid, cancelled or expired.")
class Order:
    id: strawberry.ID
    order_no: str
    status: m.OrderStatus
    channel: m.SalesChannel
    event_id: strawberry.ID
    session_id: strawberry.ID
    tenant_id: strawberry.ID
    subtotal: Money
    promotion_discount: Money
    coupon_discount: Money
    discount: Money = strawberry.field(description="Promotion plus coupon.")
    total: Money
    refunded: Money
    user_coupon_id: strawberry.ID | None = strawberry.field(
        description="The coupon used (see couponDiscount)."
    )
    promotion_id: strawberry.ID | None = strawberry.field(
        description="The event promotion applied (see promotionDiscount)."
    )
    contact: Contact
    expires_at: datetime | None
    paid_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    _model: strawberry.Private[m.Order]

    @classmethod
    def from_model(cls, order: m.Order) -> Order:
        c = order.currency
        return cls(
            id=strawberry.ID(order.id),
            order_no=order.order_no,
            status=order.status,
            channel=order.channel,
            event_id=strawberry.ID(order.event_id),
            session_id=strawberry.ID(order.session_id),
            tenant_id=strawberry.ID(order.tenant_id),
            subtotal=Money.from_minor(order.subtotal_minor, c),
            promotion_discount=Money.from_minor(order.promotion_discount_minor, c),
            coupon_discount=Money.from_minor(order.coupon_discount_minor, c),
            discount=Money.from_minor(
                order.promotion_discount_minor + order.coupon_discount_minor, c
            ),
            total=Money.from_minor(order.total_minor, c),
            refunded=Money.from_minor(order.refunded_minor, c),
            user_coupon_id=strawberry.ID(order.user_coupon_id) if order.user_coupon_id else None,
            promotion_id=strawberry.ID(order.promotion_id) if order.promotion_id else None,
            contact=Contact(_order=order),
            expires_at=order.expires_at,
            paid_at=order.paid_at,
            cancelled_at=order.cancelled_at,
            cancel_reason=order.cancel_reason,
            created_at=order.created_at,
            _model=order,
        )

    @strawberry.field
    async def items(self, info: Info) -> list[OrderItem]:
        rows = await info.context.loaders.items_by_order.load(self._model.id)
        return [OrderItem.from_model(item, self._model.currency) for item in rows]

    @strawberry.field(description="The order's e-tickets (once paid), revoked ones included.")
    async def tickets(self, info: Info) -> list[Ticket]:
        rows = await info.context.loaders.tickets_by_order.load(self._model.id)
        return [Ticket.from_model(t) for t in rows]

    @strawberry.field
    async def payments(self, info: Info) -> list[Payment]:
        rows = await info.context.loaders.payments_by_order.load(self._model.id)
        return [Payment.from_model(p) for p in rows]


@strawberry.type(name="OrderConnection")
class OrderConnection(Connection[Order]):
    pass


@strawberry.type(
    description="What the client needs to pay: open `payUrl`, or hand `params` to the "
    "provider's SDK."
)
class PaymentIntent:
    payment_no: str
    channel: PaymentChannel
    amount: Money
    pay_url: str | None
    params: JSON

    @classmethod
    def of(cls, payment: m.Payment, start: PaymentStart) -> PaymentIntent:
        return cls(
            payment_no=payment.payment_no,
            channel=PaymentChannel(payment.channel),
            amount=Money.from_minor(payment.amount_minor, payment.currency),
            pay_url=start.pay_url,
            params=JSON(dict(start.params)),
        )


@strawberry.input
class ContactInput:
    name: str | None = None
    phone: str | None = None


@strawberry.input
class CreateOrderInput:
    hold_token: str
    idempotency_key: str = strawberry.field(
        description="Unique per order attempt; retrying with the same key returns the first result."
    )
    contact: ContactInput | None = None
    user_coupon_id: strawberry.ID | None = None


@strawberry.input
class OrderFilter:
    tenant_id: strawberry.ID | None = strawberry.field(
        default=None, description="Required for operators; staff default to their tenant."
    )
    status: m.OrderStatus | None = None
    event_id: strawberry.ID | None = None
    session_id: strawberry.ID | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    buyer_phone: str | None = None
