"""Accounts, tenants, memberships and sign-in state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Field, SQLModel

from boxoffice.models.base import enum_field, id_field, json_field, ref_field, time_field


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


class TenantStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    REJECTED = "REJECTED"
    DISABLED = "DISABLED"


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = id_field()
    email: str | None = Field(default=None, max_length=254, unique=True)
    phone: str | None = Field(default=None, max_length=32, unique=True)
    password_hash: str | None = Field(default=None, max_length=255)
    nickname: str = Field(default="", max_length=64)
    avatar_url: str | None = Field(default=None, max_length=500)
    real_name: str | None = Field(default=None, max_length=64)
    gender: int = Field(default=0)
    city: str | None = Field(default=None, max_length=64)
    status: UserStatus = enum_field(UserStatus.ACTIVE)
    roles: list[str] = json_field(list)
    token_version: int = Field(default=1)
    last_login_at: datetime | None = time_field()
    last_login_ip: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field(now=True)
    updated_at: datetime = time_field(now=True)


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
    """An openid of a WeChat app bound to a user (first sign-in creates the user)."""

    __tablename__ = "wechat_accounts"
    __table_args__ = (UniqueConstraint("app_id", "openid"),)

    id: str = id_field()
    app_id: str = Field(max_length=64)
    openid: str = Field(max_length=128)
    unionid: str | None = Field(default=None, max_length=128, index=True)
    user_id: str = ref_field("users.id")
    created_at: datetime = time_field(now=True)


class SandboxMessage(SQLModel, table=True):
    """What the sandbox SMS and e-mail providers 'sent', for developers and tests to read."""

    __tablename__ = "sandbox_messages"

    id: str = id_field()
    channel: str = Field(max_length=16, index=True)
    recipient: str = Field(max_length=254, index=True)
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
