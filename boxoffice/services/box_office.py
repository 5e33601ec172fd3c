"""The box office: an organizer sells at the counter — hold, order and paid in one step.

The sale goes through the same gate as online customers (the seat ledger: no seat two ways)
and the same database guarantees (conditional capacity, unique live seats), in one
transaction that also records the payment (cash, card or transfer) and writes ``order.paid``,
so tickets are issued exactly as for online orders — at once, in the same transaction, so the
counter can print them. Box office sales ignore the online sale
window and the waiting room (the counter opens when the organizer says), but not capacity.
"""

from __future__ import annotations

from enum import StrEnum

from boxoffice.clock import utcnow
from boxoffice.errors import BoxofficeError
from boxoffice.ids import new_id
from boxoffice.models.identity import Role
from boxoffice.models.orders import Order, Payment, PaymentStatus, SalesChannel
from boxoffice.services import audit, inventory, validation
from boxoffice.services.orders import OrderDeps, place_from_hold, publish_order
from boxoffice.services.payments import mark_paid
from boxoffice.services.ticket_issuance import issue_for_order
from boxoffice.services.ticket_keys import TicketKeys
from boxoffice.services.viewer import Viewer


def order_units(hold: inventory.HoldView) -> dict[str, int]:
    return {item.tier_id: item.quantity for item in hold.items}


class BoxOfficePayment(StrEnum):
    CASH = "CASH"
    CARD = "CARD"
    TRANSFER = "TRANSFER"


async def sell(
    *,
    deps: OrderDeps,
    viewer: Viewer,
    session_id: str,
    tier_id: str | None,
    quantity: int | None,
    seat_ids: list[str] | None,
    buyer_name: str | None,
    buyer_phone: str | None,
    payment_method: BoxOfficePayment,
    ticket_keys: TicketKeys | None = None,
    hold_ttl_seconds: int = 60,
) -> Order:
    """Sell seats or units at the counter. ORGANIZER of the session's tenant (or OPERATOR).

    Raises what holds and orders raise (``SoldOut``, ``SeatUnavailable``, ``BadUserInput``,
    ``NotFound``/``Forbidden`` for other tenants' sessions and other roles).
    """
    staff_id = viewer.require_user()
    rules = await deps.rules.get(session_id)
    viewer.require_staff(rules.tenant_id, Role.ORGANIZER)
    name = validation.optional_text(buyer_name, field="buyer.name", max_length=64)
    phone = validation.phone(buyer_phone, field="buyer.phone") if buyer_phone else None
    hold = await inventory.create_hold(
        db=deps.db,
        ledger=deps.ledger,
        rules_cache=deps.rules,
        sold_out=inventory.SoldOutFlags(),
        queue_tokens=None,
        codes=None,
        viewer=viewer,
        session_id=session_id,
        tier_id=tier_id,
        quantity=quantity,
        seat_ids=seat_ids,
        ttl_seconds=hold_ttl_seconds,
        enforce_sale_window=False,
        holder_id=staff_id,
    )
    now = utcnow()
    try:
        async with deps.db.write() as session:
            order, _items = await place_from_hold(
                session,
                deps,
                hold=hold,
                user_id=None,
                contact_name=name,
                contact_phone=phone,
                user_coupon_id=None,
                now=now,
                channel=SalesChannel.BOX_OFFICE,
            )
            payment = Payment(
                payment_no="B" + new_id(),
                order_id=order.id,
                tenant_id=order.tenant_id,
                user_id=staff_id,
                channel=SalesChannel.BOX_OFFICE.value,
                amount_minor=order.total_minor,
                currency=order.currency,
                status=PaymentStatus.PENDING,
                provider_trade_no=payment_method.value,
                paid_at=now,
            )
            session.add(payment)
            await mark_paid(session, order, payment, now)
            order.payment_method = payment_method.value
            session.add(order)
            if ticket_keys is not None:  # at the counter the tickets are printed at once
                await session.flush()
                await issue_for_order(session, ticket_keys, order.id)
            audit.record(
                session,
                viewer=viewer,
                action="order.box_office_sale",
                target_type="Order",
                target_id=order.id,
                tenant_id=order.tenant_id,
                after={
                    "orderNo": order.order_no,
                    "total": order.total_minor,
                    "paymentMethod": payment_method.value,
                    "units": order_units(hold),
                },
            )
    except BoxofficeError:
        await inventory.give_back(deps.ledger, session_id, hold.hold_id)
        raise
    if not await deps.ledger.confirm(session_id, hold.hold_id):
        await inventory.load_ledger(db=deps.db, ledger=deps.ledger, rules=rules, force=True)
    await publish_order(deps.broker, order)
    return order
