"""Accounts: registration, profiles, passwords, roles and freezing."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice import pii
from boxoffice.backends.broker import Broker, channels
from boxoffice.backends.codes import CodeStore
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import (
    AlreadyExists,
    BadUserInput,
    InvalidCredentials,
    NotFound,
)
from boxoffice.models.identity import (
    PLATFORM_ROLES,
    TENANT_ROLES,
    Membership,
    RefreshToken,
    Role,
    Tenant,
    TenantStatus,
    User,
    UserStatus,
)
from boxoffice.providers.messaging import mask_recipient
from boxoffice.services import audit, revocation, validation
from boxoffice.services.passwords import PasswordHasher, check_password_policy
from boxoffice.services.sms_codes import SmsPurpose, verify_code
from boxoffice.services.viewer import Viewer

LIVE_TENANT_STATUSES = (TenantStatus.ACTIVE, TenantStatus.PENDING)


@dataclass(frozen=True, slots=True)
class RoleSet:
    platform: list[str]
    tenants: dict[str, list[str]]

    def all(self) -> list[str]:
        out = set(self.platform)
        for roles in self.tenants.values():
            out.update(roles)
        return sorted(out)


async def roles_of(session: AsyncSession, user: User) -> RoleSet:
    """Platform roles from the user, tenant roles from memberships of live tenants."""
    rows = await session.exec(
        select(Membership.tenant_id, Membership.role)
        .join(Tenant, col(Tenant.id) == col(Membership.tenant_id))
        .where(Membership.user_id == user.id, col(Tenant.status).in_(LIVE_TENANT_STATUSES))
    )
    tenants: dict[str, list[str]] = {}
    for tenant_id, role in rows.all():
        tenants.setdefault(tenant_id, []).append(str(role))
    return RoleSet(platform=sorted(user.roles), tenants=tenants)


async def publish_account_change(broker: Broker, user_id: str, kind: str) -> None:
    """Tell the user's open ``accountUpdates`` subscriptions that the account changed."""
    await broker.publish(channels.account(user_id), orjson.dumps({"kind": kind}).decode())


async def get_user(db: Database, user_id: str) -> User:
    async with db.read() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def _identifier(email: str | None, phone: str | None) -> tuple[str | None, str | None]:
    if bool(email) == bool(phone):
        raise BadUserInput("Give either email or phone.", field="email" if email else "phone")
    return (validation.email(email), None) if email else (None, validation.phone(phone or ""))


async def register(
    *,
    db: Database,
    codes: CodeStore,
    hasher: PasswordHasher,
    email: str | None,
    phone: str | None,
    sms_code: str | None,
    password: str,
    nickname: str,
) -> User:
    """Create a CUSTOMER. A phone sign-up needs its REGISTER code.

    Raises ``BadUserInput`` (naming the field), ``AlreadyExists``.
    """
    email, phone = _identifier(email, phone)
    nickname = validation.text(nickname, field="nickname", max_length=32)
    check_password_policy(password)
    if phone is not None:
        if not sms_code:
            raise BadUserInput("smsCode is required to register with a phone.", field="smsCode")
        await verify_code(codes=codes, phone=phone, purpose=SmsPurpose.REGISTER, code=sms_code)
    password_hash = await hasher.hash(password)
    field = "email" if email else "phone"
    try:
        async with db.write() as session:
            taken = await session.exec(
                select(User.id).where(
                    col(User.email_hash) == pii.email_hash(email)
                    if email
                    else col(User.phone_hash) == pii.phone_hash(phone)
                )
            )
            if taken.first() is not None:
                raise AlreadyExists(f"An account with this {field} already exists.", field=field)
            user = User(
                email=email,
                phone=phone,
                password_hash=password_hash,
                nickname=nickname,
                roles=[Role.CUSTOMER.value],
            )
            session.add(user)
    except IntegrityError as exc:
        raise AlreadyExists(f"An account with this {field} already exists.", field=field) from exc
    return user


async def create_user(
    *,
    db: Database,
    hasher: PasswordHasher,
    email: str,
    password: str,
    role: Role,
    tenant_id: str | None = None,
    nickname: str | None = None,
    viewer: Viewer | None = None,
) -> User:
    """Create an account with a role (CLI, operators). ORGANIZER and CHECKIN need a tenant.

    Raises ``BadUserInput``, ``AlreadyExists``, ``NotFound`` (tenant).
    """
    email = validation.email(email)
    check_password_policy(password)
    if role in TENANT_ROLES and not tenant_id:
        raise BadUserInput(f"{role} accounts belong to a tenant.", field="tenant")
    if role in PLATFORM_ROLES and tenant_id:
        raise BadUserInput(f"{role} accounts do not belong to a tenant.", field="tenant")
    password_hash = await hasher.hash(password)
    try:
        async with db.write() as session:
            if tenant_id is not None and await session.get(Tenant, tenant_id) is None:
                raise NotFound("No such tenant.", field="tenant")
            known = select(User.id).where(col(User.email_hash) == pii.email_hash(email))
            if (await session.exec(known)).first():
                raise AlreadyExists("An account with this email already exists.", field="email")
            platform = [role.value] if role in PLATFORM_ROLES else [Role.CUSTOMER.value]
            user = User(
                email=email,
                password_hash=password_hash,
                nickname=nickname or email.split("@", 1)[0][:32],
                roles=platform,
            )
            session.add(user)
            await session.flush()
            if tenant_id is not None:
                session.add(Membership(tenant_id=tenant_id, user_id=user.id, role=role))
            audit.record(
                session,
                viewer=viewer,
                action="user.create",
                target_type="User",
                target_id=user.id,
                tenant_id=tenant_id,
                after={"email": mask_recipient(email), "role": role.value},
            )
    except IntegrityError as exc:
        raise AlreadyExists("An account with this email already exists.", field="email") from exc
    return user


async def update_profile(
    *,
    db: Database,
    broker: Broker,
    viewer: Viewer,
    nickname: str | None = None,
    avatar_url: str | None = None,
    real_name: str | None = None,
    gender: int | None = None,
    city: str | None = None,
) -> User:
    user_id = viewer.require_user()
    changes: dict[str, object] = {}
    if nickname is not None:
        changes["nickname"] = validation.text(nickname, field="nickname", max_length=32)
    if avatar_url is not None:
        changes["avatar_url"] = validation.url(avatar_url, field="avatarUrl")
    if real_name is not None:
        changes["real_name"] = validation.optional_text(real_name, field="realName", max_length=64)
    if gender is not None:
        if gender not in (0, 1, 2):
            raise BadUserInput("gender is 0 (unknown), 1 or 2", field="gender")
        changes["gender"] = gender
    if city is not None:
        changes["city"] = validation.optional_text(city, field="city", max_length=64)
    async with db.write() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        for name, value in changes.items():
            setattr(user, name, value)
        user.updated_at = utcnow()
        session.add(user)
    await publish_account_change(broker, user_id, "PROFILE_UPDATED")
    return user


async def _revoke_families(
    session: AsyncSession, user_id: str, *, keep_family: str | None = None
) -> list[str]:
    """Revoke every live refresh token of the user (but ``keep_family``); return the families."""
    query = select(RefreshToken.family_id).where(
        RefreshToken.user_id == user_id, col(RefreshToken.revoked_at).is_(None)
    )
    if keep_family:
        query = query.where(RefreshToken.family_id != keep_family)
    families = sorted(set((await session.exec(query)).all()))
    if families:
        await session.exec(
            update(RefreshToken)
            .where(
                col(RefreshToken.family_id).in_(families), col(RefreshToken.revoked_at).is_(None)
            )
            .values(revoked_at=utcnow())
        )
    return families


async def change_password(
    *,
    db: Database,
    codes: CodeStore,
    hasher: PasswordHasher,
    viewer: Viewer,
    old_password: str,
    new_password: str,
    access_ttl_seconds: int,
) -> None:
    """Change the password and end every other sign-in of the user (this one stays).

    Raises ``InvalidCredentials`` (old password wrong), ``BadUserInput`` (newPassword).
    """
    user_id = viewer.require_user()
    check_password_policy(new_password, field="newPassword")
    user = await get_user(db, user_id)
    if not await hasher.verify(user.password_hash, old_password):
        raise InvalidCredentials("The current password is wrong.")
    new_hash = await hasher.hash(new_password)
    async with db.write() as session:
        await session.exec(
            update(User)
            .where(col(User.id) == user_id)
            .values(password_hash=new_hash, updated_at=utcnow())
        )
        families = await _revoke_families(session, user_id, keep_family=viewer.session_id)
    for family in families:
        await revocation.revoke_session(codes, family, ttl_seconds=access_ttl_seconds + 60)


async def reset_password(
    *,
    db: Database,
    codes: CodeStore,
    hasher: PasswordHasher,
    phone: str,
    sms_code: str,
    new_password: str,
    access_ttl_seconds: int,
) -> None:
    """Set a new password with a RESET code; every sign-in of the account ends."""
    phone = validation.phone(phone)
    check_password_policy(new_password, field="newPassword")
    await verify_code(codes=codes, phone=phone, purpose=SmsPurpose.RESET, code=sms_code)
    new_hash = await hasher.hash(new_password)
    async with db.write() as session:
        user = (
            await session.exec(select(User).where(col(User.phone_hash) == pii.phone_hash(phone)))
        ).first()
        if user is None:
            raise BadUserInput("The verification code is wrong or has expired.", field="smsCode")
        user.password_hash = new_hash
        user.token_version += 1
        user.updated_at = utcnow()
        session.add(user)
        await _revoke_families(session, user.id)
    await revocation.revoke_user(
        codes,
        user.id,
        frozen=False,
        version=user.token_version,
        ttl_seconds=access_ttl_seconds + 60,
    )


async def set_frozen(
    *,
    db: Database,
    codes: CodeStore,
    broker: Broker,
    viewer: Viewer,
    user_id: str,
    frozen: bool,
    access_ttl_seconds: int,
) -> User:
    """Freeze (every token stops working at once) or unfreeze a user. OPERATOR only."""
    viewer.require_role(Role.OPERATOR)
    async with db.write() as session:
        user = await session.get(User, user_id)
        if user is None or user.status == UserStatus.DELETED:
            raise NotFound("No such user.")
        before = audit.snapshot(user, ("status",))
        user.status = UserStatus.FROZEN if frozen else UserStatus.ACTIVE
        user.token_version += 1
        user.updated_at = utcnow()
        session.add(user)
        await _revoke_families(session, user.id)
        audit.record(
            session,
            viewer=viewer,
            action="user.freeze" if frozen else "user.unfreeze",
            target_type="User",
            target_id=user.id,
            before=before,
            after=audit.snapshot(user, ("status",)),
        )
    await revocation.revoke_user(
        codes,
        user.id,
        frozen=frozen,
        version=user.token_version,
        ttl_seconds=access_ttl_seconds + 60,
    )
    await publish_account_change(broker, user.id, "FROZEN" if frozen else "UNFROZEN")
    return user
