"""A person's own data: exporting all of it, and deleting the account (个人信息 access and
deletion).

``export_my_data`` gathers everything the platform holds about the caller into one JSON
document: profile, sign-ins, memberships, WeChat bindings, orders (with items, contact and
payments), tickets, coupons, notifications and the caller's own actions in the audit trail.
Features with more per-person data register a section in ``EXPORT_SECTIONS``
(``async section(session, user_id) -> list[dict]``); refunds and waitlist entries are here.

``delete_my_account`` anonymises the account in one transaction, after checking the
password: personal fields are wiped (e-mail, phone and their lookup hashes — so both can sign
up again — real name, avatar, city, last sign-in address, password), the status becomes
DELETED, every sign-in is revoked, tenant memberships and WeChat bindings are removed, and
notifications and sandbox messages addressed to the person are deleted. Orders, tickets and
coupons stay for accounting, keyed by the now anonymous user id, without contact names or
phones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice.backends.broker import Broker
from boxoffice.backends.codes import CodeStore
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import InvalidCredentials, NotFound
from boxoffice.models.coupons import Coupon, UserCoupon
from boxoffice.models.identity import (
    AuditEntry,
    Membership,
    RefreshToken,
    SandboxMessage,
    User,
    UserStatus,
    WechatAccount,
)
from boxoffice.models.notifications import Notification
from boxoffice.models.orders import Order, OrderItem, Payment
from boxoffice.models.refunds import Refund
from boxoffice.models.tickets import Ticket
from boxoffice.models.waitlist import WaitlistEntry
from boxoffice.services import audit, revocation
from boxoffice.services.accounts import publish_account_change
from boxoffice.services.passwords import PasswordHasher
from boxoffice.services.viewer import Viewer

EXPORT_FORMAT = "boxoffice-personal-data/1"
DELETED_NICKNAME = "已注销用户"

Section = Callable[[AsyncSession, str], Awaitable[list[dict[str, Any]]]]
EXPORT_SECTIONS: dict[str, Section] = {}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _money(minor: int, currency: str) -> dict[str, str]:
    return {"amount": f"{minor / 100:.2f}", "currency": currency}


async def _rows(session: AsyncSession, query: Any) -> list[Any]:
    return list((await session.exec(query)).all())


def _profile(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "phone": user.phone,
        "nickname": user.nickname,
        "realName": user.real_name,
        "avatarUrl": user.avatar_url,
        "gender": user.gender,
        "city": user.city,
        "status": user.status.value,
        "roles": list(user.roles),
        "createdAt": _time(user.created_at),
        "lastLoginAt": _time(user.last_login_at),
        "lastLoginIp": user.last_login_ip,
    }


async def _orders(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    orders = await _rows(
        session, select(Order).where(Order.user_id == user_id).order_by(col(Order.created_at))
    )
    ids = [o.id for o in orders]
    items = await _rows(session, select(OrderItem).where(col(OrderItem.order_id).in_(ids)))
    payments = await _rows(session, select(Payment).where(col(Payment.order_id).in_(ids)))
    out = []
    for order in orders:
        out.append(
            {
                "id": order.id,
                "orderNo": order.order_no,
                "status": order.status.value,
                "channel": order.channel.value,
                "tenantId": order.tenant_id,
                "eventId": order.event_id,
                "sessionId": order.session_id,
                "contact": {"name": order.contact_name, "phone": order.contact_phone},
                "subtotal": _money(order.subtotal_minor, order.currency),
                "discount": _money(
                    order.promotion_discount_minor + order.coupon_discount_minor, order.currency
                ),
                "total": _money(order.total_minor, order.currency),
                "refunded": _money(order.refunded_minor, order.currency),
                "createdAt": _time(order.created_at),
                "paidAt": _time(order.paid_at),
                "cancelledAt": _time(order.cancelled_at),
                "cancelReason": order.cancel_reason,
                "items": [
                    {
                        "id": i.id,
                        "tierName": i.tier_name,
                        "seatLabel": i.seat_label,
                        "price": _money(i.paid_minor, order.currency),
                        "status": i.status.value,
                    }
                    for i in items
                    if i.order_id == order.id
                ],
                "payments": [
                    {
                        "paymentNo": p.payment_no,
                        "channel": p.channel,
                        "amount": _money(p.amount_minor, p.currency),
                        "status": p.status.value,
                        "createdAt": _time(p.created_at),
                        "paidAt": _time(p.paid_at),
                    }
                    for p in payments
                    if p.order_id == order.id
                ],
            }
        )
    return out


async def _tickets(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    tickets = await _rows(
        session, select(Ticket).where(Ticket.user_id == user_id).order_by(col(Ticket.issued_at))
    )
    return [
        {
            "id": t.id,
            "ticketSn": t.ticket_sn,
            "status": t.status.value,
            "orderId": t.order_id,
            "eventId": t.event_id,
            "sessionId": t.session_id,
            "tierName": t.tier_name,
            "seatLabel": t.seat_label,
            "issuedAt": _time(t.issued_at),
        }
        for t in tickets
    ]


async def _coupons(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(
        session,
        select(UserCoupon, Coupon)
        .join(Coupon, col(Coupon.id) == col(UserCoupon.coupon_id))
        .where(UserCoupon.user_id == user_id)
        .order_by(col(UserCoupon.claimed_at)),
    )
    return [
        {
            "id": uc.id,
            "couponId": coupon.id,
            "name": coupon.name,
            "status": uc.status.value,
            "source": uc.source.value,
            "orderId": uc.order_id,
            "claimedAt": _time(uc.claimed_at),
            "usedAt": _time(uc.used_at),
        }
        for uc, coupon in rows
    ]


async def _notifications(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(
        session,
        select(Notification)
        .where(Notification.user_id == user_id)
        .order_by(col(Notification.created_at)),
    )
    return [
        {
            "id": n.id,
            "topic": n.topic,
            "channel": n.channel.value,
            "recipient": n.recipient,
            "title": n.title,
            "body": n.body,
            "createdAt": _time(n.created_at),
            "sentAt": _time(n.sent_at),
            "readAt": _time(n.read_at),
        }
        for n in rows
    ]


async def _sign_ins(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(
        session,
        select(RefreshToken)
        .where(RefreshToken.user_id == user_id)
        .order_by(col(RefreshToken.created_at)),
    )
    return [
        {
            "sessionId": r.family_id,
            "createdAt": _time(r.created_at),
            "createdIp": r.created_ip,
            "expiresAt": _time(r.expires_at),
            "revokedAt": _time(r.revoked_at),
        }
        for r in rows
    ]


async def _memberships(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(session, select(Membership).where(Membership.user_id == user_id))
    return [
        {"tenantId": m.tenant_id, "role": m.role.value, "createdAt": _time(m.created_at)}
        for m in rows
    ]


async def _wechat(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(session, select(WechatAccount).where(WechatAccount.user_id == user_id))
    return [
        {
            "appId": w.app_id,
            "openid": w.openid,
            "unionid": w.unionid,
            "createdAt": _time(w.created_at),
        }
        for w in rows
    ]


async def _own_actions(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(
        session,
        select(AuditEntry)
        .where(AuditEntry.actor_id == user_id)
        .order_by(col(AuditEntry.created_at)),
    )
    return [
        {
            "action": a.action,
            "targetType": a.target_type,
            "targetId": a.target_id,
            "ip": a.ip,
            "at": _time(a.created_at),
        }
        for a in rows
    ]


async def _refunds(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(
        session,
        select(Refund).where(Refund.user_id == user_id).order_by(col(Refund.created_at)),
    )
    return [
        {
            "refundNo": r.refund_no,
            "orderId": r.order_id,
            "status": r.status.value,
            "source": r.source.value,
            "reason": r.reason,
            "amount": _money(r.amount_minor, r.currency),
            "fee": _money(r.fee_minor, r.currency),
            "method": r.method,
            "createdAt": _time(r.created_at),
            "completedAt": _time(r.completed_at),
        }
        for r in rows
    ]


async def _waitlist(session: AsyncSession, user_id: str) -> list[dict[str, Any]]:
    rows = await _rows(
        session,
        select(WaitlistEntry)
        .where(WaitlistEntry.user_id == user_id)
        .order_by(col(WaitlistEntry.joined_at)),
    )
    return [
        {
            "id": w.id,
            "eventId": w.event_id,
            "sessionId": w.session_id,
            "tierId": w.tier_id,
            "quantity": w.quantity,
            "status": w.status.value,
            "joinedAt": _time(w.joined_at),
            "offeredAt": _time(w.offered_at),
            "orderId": w.order_id,
            "endedAt": _time(w.ended_at),
        }
        for w in rows
    ]


SECTIONS: dict[str, Section] = {
    "memberships": _memberships,
    "wechatAccounts": _wechat,
    "signIns": _sign_ins,
    "orders": _orders,
    "tickets": _tickets,
    "coupons": _coupons,
    "refunds": _refunds,
    "waitlist": _waitlist,
    "notifications": _notifications,
    "ownActions": _own_actions,
}


async def export_my_data(*, db: Database, viewer: Viewer) -> dict[str, Any]:
    """Everything the platform holds about the caller, as one JSON-safe document (read in
    one transaction, so it is consistent)."""
    user_id = viewer.require_user()
    async with db.read() as session:
        user = await session.get(User, user_id)
        if user is None or user.status == UserStatus.DELETED:
            raise NotFound("No such user.")
        document: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "exportedAt": utcnow().isoformat(),
            "profile": _profile(user),
        }
        for name, section in {**SECTIONS, **EXPORT_SECTIONS}.items():
            document[name] = await section(session, user_id)
    return document


async def delete_my_account(
    *,
    db: Database,
    codes: CodeStore,
    broker: Broker,
    hasher: PasswordHasher,
    viewer: Viewer,
    password: str,
    access_ttl_seconds: int,
) -> None:
    """Anonymise the caller's account (see the module docstring). Raises
    ``InvalidCredentials`` when the password is wrong (or the account has none)."""
    user_id = viewer.require_user()
    async with db.read() as session:
        user = await session.get(User, user_id)
    if user is None or user.status == UserStatus.DELETED:
        raise NotFound("No such user.")
    if not await hasher.verify(user.password_hash, password):
        raise InvalidCredentials("The password is wrong.")
    now = utcnow()
    async with db.write() as session:
        user = await session.get(User, user_id, with_for_update=True, populate_existing=True)
        assert user is not None
        addressed = [h for h in (user.email_hash, user.phone_hash) if h]
        user.email = user.phone = user.real_name = None
        user.avatar_url = user.city = user.last_login_ip = user.password_hash = None
        user.nickname, user.gender, user.roles = DELETED_NICKNAME, 0, []
        user.status, user.deleted_at, user.updated_at = UserStatus.DELETED, now, now
        user.token_version += 1
        session.add(user)
        await session.exec(
            update(Order)
            .where(col(Order.user_id) == user_id)
            .values(contact_name=None, contact_phone=None, contact_phone_hash=None)
        )
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=now)
        )
        await session.exec(delete(Membership).where(col(Membership.user_id) == user_id))
        await session.exec(delete(WechatAccount).where(col(WechatAccount.user_id) == user_id))
        await session.exec(delete(Notification).where(col(Notification.user_id) == user_id))
        if addressed:
            await session.exec(
                delete(SandboxMessage).where(col(SandboxMessage.recipient_hash).in_(addressed))
            )
        audit.record(
            session,
            viewer=viewer,
            action="user.delete",
            target_type="User",
            target_id=user_id,
            after={"status": UserStatus.DELETED.value},
        )
    await revocation.revoke_user(
        codes,
        user_id,
        frozen=False,
        version=user.token_version,
        ttl_seconds=access_ttl_seconds + 60,
    )
    await publish_account_change(broker, user_id, "DELETED")
