"""Accounts, tenants, memberships and sign-in state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, UniqueConstraint, event
from sqlmodel import Field, SQLModel

from boxoffice import pii
from boxoffice.models.base import (
    changed,
    encrypted_field,
    enum_field,
    id_field,
    json_field,
    lookup_hash_field,
    ref_field,
    time_field,
)


class Role(StrEnum):
    CUSTOMER = "CUSTOMER"
    ORGANIZER = "ORGANIZER"
    OPERATOR = "OPERATOR"
    AGENT = "AGENT"
    CHECKIN = "CHECKIN"


PLATFORM_ROLES = frozenset({Role.CUSTOMER, Role.OPERATOR, Role.AGENT})
TENANT_ROLES = frozenset({Role.ORGANIZER, Role.CHECKIN})


class UserStatus(StrEnum):
    ACTIVE = "ACTIVE"
    FROZEN = "FROZEN"
    DELETED = "DELETED"  # anonymised at the owner's request (``deleteMyAccount``)


class TenantStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    REJECTED = "REJECTED"
    DISABLED = "DISABLED"


class User(SQLModel, table=True):
    """An account. ``email``, ``phone`` and ``real_name`` are encrypted at rest; sign-in and
    uniqueness go through ``email_hash`` and ``phone_hash`` (set from them on every write)."""

    __tablename__ = "users"

    id: str = id_field()
    email: str | None = encrypted_field()
    phone: str | None = encrypted_field()
    email_hash: str | None = lookup_hash_field(unique=True)
    phone_hash: str | None = lookup_hash_field(unique=True)
    password_hash: str | None = Field(default=None, max_length=255)
    nickname: str = Field(default="", max_length=64)
    avatar_url: str | None = Field(default=None, max_length=500)
    real_name: str | None = encrypted_field()
    gender: int = Field(default=0)
    city: str | None = Field(default=None, max_length=64)
    status: UserStatus = enum_field(UserStatus.ACTIVE)
    roles: list[str] = json_field(list)
    token_version: int = Field(default=1)
    last_login_at: datetime | None = time_field()
    last_login_ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)
    deleted_at: datetime | None = time_field()


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = id_field()
    name: str = Field(max_length=100)
    logo_url: str | None = Field(default=None, max_length=500)
    theme: dict[str, str] = json_field(dict)
    features: dict[str, bool] = json_field(dict)
    contact: dict[str, str] = json_field(dict)
    status: TenantStatus = enum_field(TenantStatus.ACTIVE, index=True)
    currency: str = Field(default="CNY", max_length=3)
    audit_opinion: str | None = Field(default=None, max_length=500)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


class Membership(SQLModel, table=True):
    """Ties an ORGANIZER or CHECKIN user to the one tenant they work for."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("tenant_id", "user_id", "role"),)

    id: str = id_field()
    tenant_id: str = ref_field("tenants.id")
    user_id: str = ref_field("users.id")
    role: Role = enum_field(Role.ORGANIZER)
    created_at: datetime = time_field(now=True)


class RefreshToken(SQLModel, table=True):
    """One refresh token (stored as its SHA-256). Rotation links tokens into a family; a
    token presented after it was rotated revokes its whole family."""

    __tablename__ = "refresh_tokens"

    id: str = id_field()
    user_id: str = ref_field("users.id")
    family_id: str = Field(max_length=26, index=True)
    token_hash: str = Field(max_length=64, unique=True)
    expires_at: datetime = time_field(nullable=False)
    used_at: datetime | None = time_field()
    revoked_at: datetime | None = time_field()
    created_ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field(now=True)


class WechatAccount(SQLModel, table=True):
    """An openid of a WeChat app bound to a user (first sign-in creates the user). The
    openid and unionid identify a person: encrypted, found by their hashes."""

    __tablename__ = "wechat_accounts"
    __table_args__ = (
        UniqueConstraint("app_id", "openid_hash", name="uq_wechat_accounts_app_openid"),
    )

    id: str = id_field()
    app_id: str = Field(max_length=64)
    openid: str = encrypted_field(nullable=False)
    openid_hash: str = Field(default="", max_length=64)
    unionid: str | None = encrypted_field()
    unionid_hash: str | None = lookup_hash_field()
    user_id: str = ref_field("users.id")
    created_at: datetime = time_field(now=True)


class SandboxMessage(SQLModel, table=True):
    """What the sandbox SMS and e-mail providers 'sent', for developers and tests to read
    (the recipient encrypted, found by ``recipient_hash``)."""

    __tablename__ = "sandbox_messages"

    id: str = id_field()
    channel: str = Field(max_length=16, index=True)
    recipient: str = encrypted_field(nullable=False)
    recipient_hash: str | None = lookup_hash_field()
    subject: str | None = Field(default=None, max_length=200)
    body: str
    created_at: datetime = time_field(now=True, index=True)


class AuditEntry(SQLModel, table=True):
    """Who did what to which object, when and from where (admin mutations, callbacks)."""

    __tablename__ = "audit_log"

    id: str = id_field()
    tenant_id: str | None = Field(default=None, max_length=26, index=True)
    actor_id: str | None = Field(default=None, max_length=26, index=True)
    action: str = Field(max_length=64, index=True)
    target_type: str = Field(max_length=32)
    target_id: str | None = Field(default=None, max_length=64, index=True)
    before: dict[str, object] | None = Field(default=None, sa_type=JSON)
    after: dict[str, object] | None = Field(default=None, sa_type=JSON)
    ip: str | None = Field(default=None, max_length=64)
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field(now=True, index=True)


@event.listens_for(User, "before_insert")
@event.listens_for(User, "before_update")
def _user_lookup_hashes(_mapper: Any, _connection: Any, user: User) -> None:
    if changed(user, "email"):
        user.email_hash = pii.email_hash(user.email)
    if changed(user, "phone"):
        user.phone_hash = pii.phone_hash(user.phone)


@event.listens_for(WechatAccount, "before_insert")
@event.listens_for(WechatAccount, "before_update")
def _wechat_lookup_hashes(_mapper: Any, _connection: Any, account: WechatAccount) -> None:
    if changed(account, "openid") or changed(account, "app_id"):
        account.openid_hash = pii.openid_hash(account.app_id, account.openid) or ""
    if changed(account, "unionid"):
        account.unionid_hash = pii.unionid_hash(account.unionid)


@event.listens_for(SandboxMessage, "before_insert")
@event.listens_for(SandboxMessage, "before_update")
def _recipient_hash(_mapper: Any, _connection: Any, message: SandboxMessage) -> None:
    if changed(message, "recipient"):
        message.recipient_hash = pii.recipient_hash(message.recipient)
