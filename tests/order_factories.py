"""Factories for sessions on sale, holds, orders and paid orders — through the services, the
same path the API takes (payments go through the sandbox company's signed callback)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import select

from boxoffice.clock import utcnow
from boxoffice.ids import new_id
from boxoffice.models.events import Event, EventSession, TicketTier
from boxoffice.models.identity import Tenant, User
from boxoffice.models.orders import Order, Payment
from boxoffice.models.venues import Seat, SeatMap
from boxoffice.providers.payments import CallbackRequest, PaymentChannel
from boxoffice.providers.payments.sandbox import SandboxResult
from boxoffice.runtime import Runtime
from boxoffice.services import inventory, orders, payments
from boxoffice.services.inventory import HoldView
from tests.catalog_factories import (
    make_event,
    make_seat_map,
    make_session,
    make_tier,
    make_venue,
    publish,
)
from tests.helpers import make_tenant, viewer_for


@dataclass
class OnSale:
    tenant: Tenant
    event: Event
    session: EventSession
    seat_map: SeatMap
    ga: TicketTier  # general admission
    seated: TicketTier  # every seat of the map
    seat_ids: list[str]  # in drawing order


async def on_sale(
    rt: Runtime,
    *,
    tenant: Tenant | None = None,
    ga_capacity: int = 10,
    sections: dict[str, int] | None = None,
    rows: int = 2,
    price: str = "180.00",
    seated_price: str = "380.00",
) -> OnSale:
    """A published event with one session on sale now: a general-admission tier and a seated
    tier over the whole seat map (default: sections A and B, rows A-B, 5 seats each)."""
    tenant = tenant or await make_tenant(rt, "On Sale Club")
    venue = await make_venue(rt, tenant, "Sale Hall")
    seat_map = await make_seat_map(rt, venue, sections or {"A": 5, "B": 5}, rows=rows)
    event = await make_event(rt, tenant, venue, "On Sale Show")
    session = await make_session(
        rt, event, seat_map=seat_map, sale_starts_at=utcnow() - timedelta(hours=1)
    )
    ga = await make_tier(rt, session, "GA", price=price, capacity=ga_capacity)
    seated = await make_tier(
        rt, session, "Seated", price=seated_price, sections=list(sections or {"A": 5, "B": 5})
    )
    await publish(rt, event)
    async with rt.db.read() as s:
        seats = (
            await s.exec(select(Seat).where(Seat.seat_map_id == seat_map.id).order_by(Seat.ordinal))
        ).all()
    return OnSale(tenant, event, session, seat_map, ga, seated, [seat.id for seat in seats])


async def hold_for(rt: Runtime, user: User, session: EventSession, **kwargs: object) -> HoldView:
    return await inventory.create_hold(
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        sold_out=rt.sold_out,
        queue_tokens=rt.queue_tokens,
        codes=rt.backends.codes,
        viewer=await viewer_for(rt, user),
        session_id=session.id,
        ttl_seconds=int(kwargs.pop("ttl_seconds", rt.settings.hold_ttl_seconds)),  # type: ignore[call-overload]
        **kwargs,  # type: ignore[arg-type]
    )


async def order_for(
    rt: Runtime, user: User, hold: HoldView, *, key: str | None = None, **kwargs: object
) -> Order:
    return await orders.create_order(
        deps=rt.order_deps,
        viewer=await viewer_for(rt, user),
        hold_token=hold.token,
        idempotency_key=key or new_id(),
        **kwargs,  # type: ignore[arg-type]
    )


async def sandbox_callback(
    rt: Runtime, payment: Payment, result: SandboxResult = SandboxResult.SUCCESS
) -> CallbackRequest:
    """What the sandbox company would POST to /payments/sandbox/notify for ``payment``, once
    it recorded the payer's result (so it refunds what it saw paid)."""
    gateway = rt.payments.sandbox_gateway
    assert gateway is not None
    body = gateway.record(
        payment_no=payment.payment_no,
        result=result,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
    )
    signed = gateway.sign(body)
    return CallbackRequest(body=signed.body, headers=signed.headers)


async def start_sandbox_payment(rt: Runtime, user: User, order: Order) -> Payment:
    payment, _start = await payments.start_payment(
        deps=rt.payment_deps,
        viewer=await viewer_for(rt, user),
        order_id=order.id,
        channel=PaymentChannel.SANDBOX,
    )
    return payment


async def pay(rt: Runtime, user: User, order: Order) -> Order:
    """Pay ``order`` through the sandbox: start a payment, deliver its signed callback."""
    payment = await start_sandbox_payment(rt, user, order)
    await payments.handle_callback(
        deps=rt.payment_deps,
        channel=PaymentChannel.SANDBOX,
        request=await sandbox_callback(rt, payment),
        remote_ip="127.0.0.1",
    )
    async with rt.db.read() as session:
        paid = await session.get(Order, order.id)
    assert paid is not None
    return paid


async def paid_order(rt: Runtime, user: User, session: EventSession, **hold: object) -> Order:
    """Hold (``seat_ids=...`` or ``tier_id=..., quantity=...``), order and pay."""
    held = await hold_for(rt, user, session, **hold)
    return await pay(rt, user, await order_for(rt, user, held))
