"""A person's own data through GraphQL: ``exportMyData`` gives them everything the platform
holds about them; ``deleteMyAccount`` anonymises them and keeps their orders for accounting."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlmodel import select

from boxoffice import pii
from boxoffice.models.events import TicketTier
from boxoffice.models.identity import Membership, Role, Tenant, User, UserStatus
from boxoffice.models.orders import Order
from boxoffice.models.refunds import Refund, RefundStatus
from boxoffice.models.tickets import Ticket
from boxoffice.models.waitlist import WaitlistEntry
from boxoffice.runtime import Runtime
from boxoffice.services.notifications import notification_consumer
from boxoffice.services.outbox import dispatch_once
from tests.coupon_factories import claimed, make_coupon
from tests.helpers import PASSWORD, gql, login, make_user, token_for
from tests.order_factories import hold_for, on_sale, order_for, pay
from tests.ticket_factories import issue_pending

EXPORT = "query { exportMyData }"
DELETE = "mutation($p: String!) { deleteMyAccount(password: $p) }"
ME = "query { me { id email } }"
REGISTER = """mutation($i: RegisterInput!) { register(input: $i) { user { id } } }"""


async def raw(rt: Runtime, table: str, row_id: str) -> dict[str, Any]:
    async with rt.db.read() as session:
        found = await session.exec(  # type: ignore[call-overload]
            text(f'SELECT * FROM "{table}" WHERE id = :id'), params={"id": row_id}
        )
        return dict(found.mappings().one())


async def a_customer_with_history(rt: Runtime) -> tuple[User, Order, Order]:
    """A customer with a paid, ticketed order (contact name and phone), an unpaid one, a
    coupon, a real name and notifications; and someone else's order beside them."""
    sale = await on_sale(rt)
    user = await make_user(rt, "mei@example.com")
    async with rt.db.write() as session:
        row = await session.get(User, user.id)
        assert row is not None
        row.phone, row.real_name = "+8613800138000", "韩梅梅"
        session.add(row)
    paid = await pay(
        rt,
        user,
        await order_for(
            rt,
            user,
            await hold_for(rt, user, sale.session, seat_ids=sale.seat_ids[:2]),
            contact_name="韩梅梅",
            contact_phone="13800138000",
        ),
    )
    unpaid = await order_for(
        rt, user, await hold_for(rt, user, sale.session, tier_id=sale.ga.id, quantity=1)
    )
    await issue_pending(rt)
    await dispatch_once(rt, notification_consumer())
    await claimed(rt, user, await make_coupon(rt, name="Welcome"))
    other = await make_user(rt, "lilei@example.com")
    await order_for(
        rt,
        other,
        await hold_for(rt, other, sale.session, seat_ids=sale.seat_ids[5:6]),
        contact_phone="13912345678",
    )
    return user, paid, unpaid


async def test_export_my_data_holds_everything_about_me_and_nothing_else(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a customer with orders, tickets, a coupon and notifications
    user, paid, unpaid = await a_customer_with_history(rt)
    signed = await login(client, "mei@example.com")
    # when they export their data
    exported = (await gql(client, EXPORT, token=signed["accessToken"])).data["exportMyData"]
    # then it holds their profile in the clear, their orders with contact and payments, their
    # tickets, coupon, notifications and sign-ins — and nobody else's
    assert exported["format"] == "boxoffice-personal-data/1"
    profile = exported["profile"]
    assert (profile["id"], profile["email"], profile["phone"], profile["realName"]) == (
        user.id,
        "mei@example.com",
        "+8613800138000",
        "韩梅梅",
    )
    orders = {o["id"]: o for o in exported["orders"]}
    assert set(orders) == {paid.id, unpaid.id}
    assert orders[paid.id]["contact"] == {"name": "韩梅梅", "phone": "+8613800138000"}
    assert orders[paid.id]["total"]["amount"] == f"{paid.total_minor / 100:.2f}"
    assert [p["status"] for p in orders[paid.id]["payments"]] == ["SUCCEEDED"]
    assert len(orders[paid.id]["items"]) == 2
    assert sorted(t["orderId"] for t in exported["tickets"]) == [paid.id, paid.id]
    assert [c["name"] for c in exported["coupons"]] == ["Welcome"]
    assert {n["topic"] for n in exported["notifications"]} >= {"order.paid", "ticket.issued"}
    assert [s["sessionId"] for s in exported["signIns"]]
    assert "13912345678" not in str(exported) and "lilei" not in str(exported)
    # and it is only for the signed-in
    assert (await gql(client, EXPORT)).code == "UNAUTHENTICATED"


async def test_delete_my_account_anonymises_me_and_keeps_the_orders(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a customer with history who also works for a tenant, signed in
    user, paid, _unpaid = await a_customer_with_history(rt)
    async with rt.db.write() as session:
        session.add(Membership(tenant_id=paid.tenant_id, user_id=user.id, role=Role.CHECKIN))
    signed = await login(client, "mei@example.com")
    # a wrong password changes nothing
    wrong = await gql(client, DELETE, {"p": "not-my-password-1"}, token=signed["accessToken"])
    assert wrong.code == "INVALID_CREDENTIALS"
    assert (await gql(client, ME, token=signed["accessToken"])).data["me"]["id"] == user.id
    # when they delete their account
    done = await gql(client, DELETE, {"p": PASSWORD}, token=signed["accessToken"])
    assert done.data["deleteMyAccount"] is True
    # then every sign-in ended at once, and the account cannot sign in again
    assert (await gql(client, ME, token=signed["accessToken"])).code == "UNAUTHENTICATED"
    refresh = "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }"
    assert (await gql(client, refresh, {"t": signed["refreshToken"]})).code == "UNAUTHENTICATED"
    again = await gql(
        client,
        'mutation { login(input: {email: "mei@example.com", password: "correct-horse-9"}) { accessToken } }',
    )
    assert again.code == "INVALID_CREDENTIALS"
    # and the personal fields, their hashes and the memberships are gone
    row = await raw(rt, "users", user.id)
    assert row["status"] == UserStatus.DELETED.value
    for name in ("email", "phone", "real_name", "email_hash", "phone_hash", "password_hash"):
        assert row[name] is None, name
    async with rt.db.read() as session:
        memberships = (
            await session.exec(select(Membership).where(Membership.user_id == user.id))
        ).all()
        tickets = (await session.exec(select(Ticket).where(Ticket.order_id == paid.id))).all()
    assert memberships == []
    # while the orders stay for accounting, with their amounts and ids but no contact
    kept = await raw(rt, "orders", paid.id)
    assert (kept["total_minor"], kept["order_no"], kept["status"]) == (
        paid.total_minor,
        paid.order_no,
        "PAID",
    )
    assert (kept["contact_name"], kept["contact_phone"], kept["contact_phone_hash"]) == (
        None,
        None,
        None,
    )
    assert len(tickets) == 2
    # and the e-mail and phone can sign up again, as a new account
    fresh = await gql(
        client,
        REGISTER,
        {"i": {"email": "mei@example.com", "password": PASSWORD, "nickname": "mei"}},
    )
    assert fresh.data["register"]["user"]["id"] != user.id
    async with rt.db.write() as session:
        newcomer = User(phone="+8613800138000", nickname="new", roles=[Role.CUSTOMER.value])
        session.add(newcomer)
    assert (await raw(rt, "users", newcomer.id))["phone_hash"] == pii.phone_hash("+8613800138000")
    # and an operator cannot bring the deleted account back
    operator = await token_for(rt, await make_user(rt, "op@example.com", Role.OPERATOR))
    unfreeze = "mutation($u: ID!) { unfreezeUser(userId: $u) { status } }"
    assert (await gql(client, unfreeze, {"u": user.id}, token=operator)).code == "NOT_FOUND"


async def test_lists_show_buyers_contacts_whole_only_to_those_who_need_them(
    client: httpx.AsyncClient, rt: Runtime
):
    # given an order with a contact, its tenant's organizer and gate staff
    _user, paid, _unpaid = await a_customer_with_history(rt)
    tenant_id = paid.tenant_id
    organizer = await token_for(
        rt, await make_user(rt, "org@club.example", Role.ORGANIZER, await _tenant(rt, tenant_id))
    )
    gate = await token_for(
        rt, await make_user(rt, "gate@club.example", Role.CHECKIN, await _tenant(rt, tenant_id))
    )
    query = """query($f: OrderFilter) { merchantOrders(filter: $f) {
      edges { node { id contact { name phone } } } } }"""

    async def contact(token: str) -> dict[str, str]:
        found = (await gql(client, query, {"f": {"buyerPhone": "13800138000"}}, token=token)).data
        (edge,) = found["merchantOrders"]["edges"]
        return edge["node"]["contact"]  # type: ignore[no-any-return]

    # then the organizer sees it whole, gate staff masked
    assert await contact(organizer) == {"name": "韩梅梅", "phone": "+8613800138000"}
    assert await contact(gate) == {"name": "韩**", "phone": "+86****8000"}


async def _tenant(rt: Runtime, tenant_id: str) -> Tenant:
    async with rt.db.read() as session:
        tenant = await session.get(Tenant, tenant_id)
    assert tenant is not None
    return tenant


async def test_the_export_holds_my_refunds_and_waitlist_entries_only(
    client: httpx.AsyncClient, rt: Runtime
):
    # given a customer with a refund and a waitlist entry, and someone else with their own
    user, paid, _unpaid = await a_customer_with_history(rt)
    other = await make_user(rt, "other-refunder@example.com")
    async with rt.db.write() as session:
        for owner, number in ((user.id, "R-MINE"), (other.id, "R-THEIRS")):
            session.add(
                Refund(
                    refund_no=number,
                    tenant_id=paid.tenant_id,
                    order_id=paid.id,
                    event_id=paid.event_id,
                    session_id=paid.session_id,
                    user_id=owner,
                    reason="cannot come",
                    cost_minor=18000,
                    amount_minor=18000,
                    status=RefundStatus.REJECTED,
                )
            )
        tier = (
            await session.exec(select(TicketTier).where(TicketTier.session_id == paid.session_id))
        ).first()
        assert tier is not None
        for owner in (user.id, other.id):
            session.add(
                WaitlistEntry(
                    tenant_id=paid.tenant_id,
                    event_id=paid.event_id,
                    session_id=paid.session_id,
                    tier_id=tier.id,
                    user_id=owner,
                    quantity=2,
                )
            )
    signed = await login(client, "mei@example.com")
    # when they export their data
    exported = (await gql(client, EXPORT, token=signed["accessToken"])).data["exportMyData"]
    # then their refund and entry are there, and nobody else's
    assert [r["refundNo"] for r in exported["refunds"]] == ["R-MINE"]
    assert exported["refunds"][0]["amount"] == {"amount": "180.00", "currency": "CNY"}
    assert [(w["tierId"], w["quantity"]) for w in exported["waitlist"]] == [(tier.id, 2)]
