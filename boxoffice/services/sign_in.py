"""Signing in: password, SMS code and WeChat logins, refresh-token rotation, logout.

A sign-in session is a refresh-token family. Each refresh rotates the token; presenting a
token that was already rotated (or racing two refreshes with one token) revokes the family,
and the session's access tokens stop at once through the revocation marker.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from boxoffice import pii
from boxoffice.backends.codes import CodeStore
from boxoffice.backends.rate_limits import RateLimiter
from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import (
    AccountFrozen,
    BadUserInput,
    InvalidCredentials,
    NotFound,
    RateLimited,
    Unauthenticated,
)
from boxoffice.ids import new_id, random_token
from boxoffice.models.identity import (
    RefreshToken,
    Role,
    Tenant,
    TenantStatus,
    User,
    UserStatus,
    WechatAccount,
)
from boxoffice.providers.wechat import WechatOAuth
from boxoffice.services import revocation, validation
from boxoffice.services.access_tokens import AccessTokens
from boxoffice.services.accounts import register, roles_of
from boxoffice.services.passwords import PasswordHasher
from boxoffice.services.sms_codes import SmsPurpose, verify_code

FAILED_LOGINS_PER_ACCOUNT = (10, 900)  # failures per 15 minutes before the account is paused
LOGINS_PER_IP = (60, 60)
SIGN_UPS_PER_IP = (30, 3600)


@dataclass(frozen=True, slots=True)
class AuthKit:
    tokens: AccessTokens
    hasher: PasswordHasher
    refresh_ttl_seconds: int


@dataclass(frozen=True, slots=True)
class SignedIn:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    roles: list[str]
    is_new: bool = False


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _issue(
    session: AsyncSession,
    kit: AuthKit,
    user: User,
    *,
    family_id: str,
    ip: str | None,
    is_new: bool = False,
) -> SignedIn:
    refresh = random_token(32)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id,
            token_hash=_hash_token(refresh),
            expires_at=utcnow() + timedelta(seconds=kit.refresh_ttl_seconds),
            created_ip=ip,
        )
    )
    roles = await roles_of(session, user)
    access = kit.tokens.issue(
        user_id=user.id,
        session_id=family_id,
        version=user.token_version,
        roles=roles.platform,
        tenant_roles=roles.tenants,
    )
    return SignedIn(access, refresh, kit.tokens.ttl_seconds, user, roles.all(), is_new)


async def _start_session(
    db: Database, kit: AuthKit, user_id: str, *, ip: str | None, is_new: bool = False
) -> SignedIn:
    async with db.write() as session:
        user = await session.get(User, user_id)
        if user is None:
            raise InvalidCredentials()
        if user.status == UserStatus.FROZEN:
            raise AccountFrozen()
        user.last_login_at = utcnow()
        user.last_login_ip = ip
        session.add(user)
        return await _issue(session, kit, user, family_id=new_id(), ip=ip, is_new=is_new)


async def sign_up(
    *,
    db: Database,
    kit: AuthKit,
    codes: CodeStore,
    rate_limiter: RateLimiter,
    email: str | None,
    phone: str | None,
    sms_code: str | None,
    password: str,
    nickname: str,
    ip: str | None,
) -> SignedIn:
    """Register a CUSTOMER (see ``accounts.register``) and sign them in."""
    if ip:
        decision = await rate_limiter.hit(
            f"signup:ip:{ip}", limit=SIGN_UPS_PER_IP[0], window_seconds=SIGN_UPS_PER_IP[1]
        )
        if not decision.allowed:
            raise RateLimited(retry_after=decision.retry_after)
    user = await register(
        db=db,
        codes=codes,
        hasher=kit.hasher,
        email=email,
        phone=phone,
        sms_code=sms_code,
        password=password,
        nickname=nickname,
    )
    return await _start_session(db, kit, user.id, ip=ip, is_new=True)


async def login(
    *,
    db: Database,
    kit: AuthKit,
    codes: CodeStore,
    rate_limiter: RateLimiter,
    email: str | None,
    phone: str | None,
    password: str | None,
    sms_code: str | None,
    ip: str | None,
) -> SignedIn:
    """Email or phone with a password, or phone with a LOGIN code.

    Raises ``InvalidCredentials`` (never saying which part was wrong), ``AccountFrozen``
    (only to someone who proved the password), ``RateLimited``, ``BadUserInput``.
    """
    if bool(email) == bool(phone):
        raise BadUserInput("Give either email or phone.", field="email")
    if ip:
        decision = await rate_limiter.hit(
            f"login:ip:{ip}", limit=LOGINS_PER_IP[0], window_seconds=LOGINS_PER_IP[1]
        )
        if not decision.allowed:
            raise RateLimited(retry_after=decision.retry_after)
    account = validation.email(email) if email else validation.phone(phone or "")
    failures_key = f"login:fail:{account}"
    failures = await codes.get(failures_key)
    if failures is not None and int(failures) >= FAILED_LOGINS_PER_ACCOUNT[0]:
        raise RateLimited(
            "Too many failed sign-ins; try again later.", retry_after=FAILED_LOGINS_PER_ACCOUNT[1]
        )
    async with db.read() as session:
        query = select(User).where(
            col(User.email_hash) == pii.email_hash(account)
            if email
            else col(User.phone_hash) == pii.phone_hash(account)
        )
        user = (await session.exec(query)).first()
    if password is not None:
        ok = await kit.hasher.verify(user.password_hash if user else None, password)
    elif sms_code is not None and phone:
        try:
            await verify_code(codes=codes, phone=account, purpose=SmsPurpose.LOGIN, code=sms_code)
            ok = user is not None
        except BadUserInput:
            ok = False
    else:
        raise BadUserInput("Give a password or an SMS code.", field="password")
    if not ok or user is None:
        await codes.incr(failures_key, ttl_seconds=FAILED_LOGINS_PER_ACCOUNT[1])
        raise InvalidCredentials()
    await codes.delete(failures_key)
    if password is not None and user.password_hash and kit.hasher.needs_rehash(user.password_hash):
        new_hash = await kit.hasher.hash(password)
        async with db.write() as session:
            await session.exec(
                update(User).where(col(User.id) == user.id).values(password_hash=new_hash)
            )
    return await _start_session(db, kit, user.id, ip=ip)


async def login_with_wechat(
    *,
    db: Database,
    kit: AuthKit,
    wechat: WechatOAuth,
    code: str,
    tenant_id: str | None,
    ip: str | None,
) -> SignedIn:
    """Exchange the code for an openid; the first sign-in creates a CUSTOMER. With a tenant,
    the code comes from that tenant's mini-program (its own app id, its own openids)."""
    app_id = None
    if tenant_id is not None:
        async with db.read() as session:
            tenant = await session.get(Tenant, tenant_id)
        if tenant is None or tenant.status != TenantStatus.ACTIVE:
            raise NotFound("No such tenant.", field="tenantId")
        app_id = f"tenant:{tenant.id}"
    identity = await wechat.exchange(code, app_id=app_id)
    async with db.write() as session:
        bound = (
            await session.exec(
                select(WechatAccount).where(
                    WechatAccount.app_id == identity.app_id,
                    WechatAccount.openid_hash == pii.openid_hash(identity.app_id, identity.openid),
                )
            )
        ).first()
        if bound is not None:
            user_id, is_new = bound.user_id, False
        else:
            user = User(nickname=f"wx_{identity.openid[-6:]}", roles=[Role.CUSTOMER.value])
            session.add(user)
            await session.flush()
            session.add(
                WechatAccount(
                    app_id=identity.app_id,
                    openid=identity.openid,
                    unionid=identity.unionid,
                    user_id=user.id,
                )
            )
            user_id, is_new = user.id, True
    return await _start_session(db, kit, user_id, ip=ip, is_new=is_new)


async def refresh(
    *, db: Database, kit: AuthKit, codes: CodeStore, refresh_token: str, ip: str | None
) -> SignedIn:
    """Rotate a refresh token. Reuse of a rotated token revokes its whole family.

    Raises ``Unauthenticated`` (unknown, expired, revoked or reused), ``AccountFrozen``.
    """
    now = utcnow()
    reused_family: str | None = None
    async with db.write() as session:
        row = (
            await session.exec(
                select(RefreshToken).where(RefreshToken.token_hash == _hash_token(refresh_token))
            )
        ).first()
        if row is None:
            raise Unauthenticated("Unknown refresh token.", reason="REFRESH_TOKEN_INVALID")
        claimed = await session.exec(
            update(RefreshToken)
            .where(
                col(RefreshToken.id) == row.id,
                col(RefreshToken.used_at).is_(None),
                col(RefreshToken.revoked_at).is_(None),
            )
            .values(used_at=now)
        )
        if claimed.rowcount != 1:
            reused_family = row.family_id
            await session.exec(
                update(RefreshToken)
                .where(
                    col(RefreshToken.family_id) == row.family_id,
                    col(RefreshToken.revoked_at).is_(None),
                )
                .values(revoked_at=now)
            )
        elif row.expires_at <= now:
            raise Unauthenticated("The refresh token has expired.", reason="REFRESH_TOKEN_EXPIRED")
        else:
            user = await session.get(User, row.user_id)
            if user is None:
                raise Unauthenticated("Unknown refresh token.", reason="REFRESH_TOKEN_INVALID")
            if user.status == UserStatus.FROZEN:
                raise AccountFrozen()
            return await _issue(session, kit, user, family_id=row.family_id, ip=ip)
    await revocation.revoke_session(codes, reused_family, ttl_seconds=kit.tokens.ttl_seconds + 60)
    raise Unauthenticated(
        "This refresh token was already used; the sign-in has been ended.",
        reason="REFRESH_TOKEN_REUSED",
    )


async def logout(*, db: Database, kit: AuthKit, codes: CodeStore, refresh_token: str) -> None:
    """End the sign-in session the refresh token belongs to (its access tokens too)."""
    async with db.write() as session:
        row = (
            await session.exec(
                select(RefreshToken).where(RefreshToken.token_hash == _hash_token(refresh_token))
            )
        ).first()
        if row is None:
            return
        await session.exec(
            update(RefreshToken)
            .where(
                col(RefreshToken.family_id) == row.family_id, col(RefreshToken.revoked_at).is_(None)
            )
            .values(revoked_at=utcnow())
        )
    await revocation.revoke_session(codes, row.family_id, ttl_seconds=kit.tokens.ttl_seconds + 60)
