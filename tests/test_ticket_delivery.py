"""Printing (once, until reissued) and sending e-tickets through the notification path."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from boxoffice import pii
from boxoffice.errors import BadUserInput, Forbidden, NotFound
from boxoffice.models.identity import AuditEntry, Role, SandboxMessage
from boxoffice.models.notifications import Notification, NotificationChannel
from boxoffice.models.tickets import Ticket
from boxoffice.runtime import Runtime
from boxoffice.services import notifications, ticket_delivery, ticket_revocations
from boxoffice.services.outbox import dispatch_once
from boxoffice.services.viewer import Viewer
from tests.helpers import make_tenant, make_user, viewer_for
from tests.order_factories import hold_for, on_sale, order_for
from tests.ticket_factories import gate_staff, organizer, ticketed_order


async def print_orders(rt: Runtime, viewer: Viewer, *order_ids: str) -> list[str]:
    printed = await ticket_delivery.print_tickets(
        deps=rt.ticket_deps, viewer=viewer, order_ids=list(order_ids)
    )
    return [p.ticket.ticket_sn for p in printed]


async def test_an_agent_prints_an_orders_tickets_once_and_again_only_after_a_reissue(
    rt: Runtime,
):
    # given a paid order of two seats and an agent
    sale = await on_sale(rt)
    user = await make_user(rt, "paper@example.com")
    order, tickets = await ticketed_order(rt, user, sale)
    agent = await viewer_for(rt, await make_user(rt, "agent@example.com", Role.AGENT))
    # when the agent prints it
    printed = await ticket_delivery.print_tickets(
        deps=rt.ticket_deps, viewer=agent, order_ids=[order.id]
    )
    # then each ticket comes with what goes on the paper, and is marked printed
    assert sorted(p.ticket.ticket_sn for p in printed) == sorted(t.ticket_sn for t in tickets)
    first = printed[0]
    assert (first.event_title, first.venue_name, first.order_no) == (
        "On Sale Show",
        "Sale Hall",
        order.order_no,
    )
    assert first.session_starts_at == sale.session.starts_at
    assert first.ticket.qr_payload in {t.qr_payload for t in tickets}
    assert first.ticket.printed_at is not None
    # and printing again is refused, naming the ticket, without marking anything
    with pytest.raises(BadUserInput) as again:
        await print_orders(rt, agent, order.id)
    assert again.value.details["reason"] == "ALREADY_PRINTED"
    assert again.value.field == "orderIds"
    # when the organizer reissues one, only the new one prints
    _boss, boss = await organizer(rt, "boss@club.test", sale.tenant)
    fresh = await ticket_revocations.reissue_ticket(
        deps=rt.ticket_deps, viewer=boss, ticket_id=tickets[0].id
    )
    with pytest.raises(BadUserInput):
        await print_orders(rt, agent, order.id)  # the other ticket is still printed
    async with rt.db.read() as session:
        stored = await session.get(Ticket, fresh.id)
    assert stored is not None and stored.printed_at is None
    await ticket_revocations.reissue_ticket(
        deps=rt.ticket_deps, viewer=boss, ticket_id=tickets[1].id
    )
    reprinted = await print_orders(rt, boss, order.id)
    assert len(reprinted) == 2 and fresh.ticket_sn in reprinted
    assert not set(reprinted) & {t.ticket_sn for t in tickets}
    # and every print is in the audit trail
    async with rt.db.read() as session:
        entries = (
            await session.exec(select(AuditEntry).where(AuditEntry.action == "tickets.print"))
        ).all()
    assert len(entries) == 2


async def test_two_agents_printing_one_order_at_once_print_it_once(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "race@example.com")
    order, _tickets = await ticketed_order(rt, user, sale)
    agent = await viewer_for(rt, await make_user(rt, "a1@example.com", Role.AGENT))

    async def attempt() -> int:
        try:
            return len(await print_orders(rt, agent, order.id))
        except BadUserInput:
            return 0

    results = await asyncio.gather(*(attempt() for _ in range(6)))
    assert sorted(results) == [0, 0, 0, 0, 0, 2]


async def test_printing_is_for_agents_and_the_tenants_organizers(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "who@example.com")
    order, _tickets = await ticketed_order(rt, user, sale)
    unpaid = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[5:6])
    )
    _rival, rival = await organizer(rt, "rival@other.test", await make_tenant(rt, "Rival"))
    _staff, gate = await gate_staff(rt, "gate@club.test", sale.tenant)
    customer = await viewer_for(rt, user)
    with pytest.raises(NotFound):
        await print_orders(rt, rival, order.id)
    with pytest.raises(Forbidden):
        await print_orders(rt, gate, order.id)
    with pytest.raises(Forbidden):
        await print_orders(rt, customer, order.id)
    _boss, boss = await organizer(rt, "boss@club.test", sale.tenant)
    with pytest.raises(BadUserInput) as nothing:
        await print_orders(rt, boss, order.id, unpaid.id)
    assert nothing.value.details["reason"] == "NO_TICKETS"
    with pytest.raises(BadUserInput):
        await print_orders(rt, boss)
    # none of the refused calls marked anything
    assert len(await print_orders(rt, boss, order.id)) == 2


async def test_sending_tickets_mails_their_codes_to_the_buyer(rt: Runtime):
    # given a buyer with an e-mail address and a ticketed order
    sale = await on_sale(rt)
    user = await make_user(rt, "mailme@example.com")
    order, tickets = await ticketed_order(rt, user, sale)
    # when the buyer asks for the e-tickets and the notification consumer runs
    assert await ticket_delivery.send_tickets(
        deps=rt.ticket_deps, viewer=await viewer_for(rt, user), order_id=order.id
    )
    await dispatch_once(rt, notifications.notification_consumer())
    # then an e-mail carrying each ticket's signed payload went out, and an in-app message
    async with rt.db.read() as session:
        mails = (
            await session.exec(
                select(SandboxMessage).where(
                    SandboxMessage.recipient_hash == pii.recipient_hash("mailme@example.com")
                )
            )
        ).all()
        in_app = (
            await session.exec(
                select(Notification).where(
                    Notification.topic == "tickets.sent",
                    Notification.channel == NotificationChannel.IN_APP,
                )
            )
        ).all()
    sent = [m for m in mails if m.subject and m.subject.startswith("您的电子票")]
    assert len(sent) == 1
    for ticket in tickets:
        assert ticket.qr_payload in sent[0].body and ticket.ticket_sn in sent[0].body
    assert [n.user_id for n in in_app] == [user.id]
    assert tickets[0].ticket_sn in in_app[0].body
    assert tickets[0].qr_payload not in in_app[0].body


async def test_only_the_buyer_and_staff_send_tickets(rt: Runtime):
    sale = await on_sale(rt)
    user = await make_user(rt, "owner@example.com")
    order, _tickets = await ticketed_order(rt, user, sale)
    stranger = await viewer_for(rt, await make_user(rt, "stranger@example.com"))
    with pytest.raises(NotFound):
        await ticket_delivery.send_tickets(deps=rt.ticket_deps, viewer=stranger, order_id=order.id)
    _boss, boss = await organizer(rt, "boss@club.test", sale.tenant)
    assert await ticket_delivery.send_tickets(deps=rt.ticket_deps, viewer=boss, order_id=order.id)
    unpaid = await order_for(
        rt, user, await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[5:6])
    )
    with pytest.raises(BadUserInput) as nothing:
        await ticket_delivery.send_tickets(
            deps=rt.ticket_deps, viewer=await viewer_for(rt, user), order_id=unpaid.id
        )
    assert nothing.value.details["reason"] == "NO_TICKETS"
