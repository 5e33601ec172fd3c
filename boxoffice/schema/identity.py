"""GraphQL types of accounts, sign-in and tenants."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from boxoffice.models import identity as m
from boxoffice.providers.messaging import mask_recipient
from boxoffice.schema.context import Info
from boxoffice.schema.enums import Role, TenantStatus, UserStatus
from boxoffice.services.sign_in import SignedIn


async def _sees_private(info: Info, user: User) -> bool:
    if user._own:
        return True
    viewer = await info.context.viewer()
    return viewer.user_id == user._model.id or viewer.is_operator


@strawberry.type(
    description="An account: customer, organizer staff, gate staff, agent or operator."
)
class User:
    id: strawberry.ID
    nickname: str
    avatar_url: str | None
    status: UserStatus
    created_at: datetime
    last_login_at: datetime | None
    _model: strawberry.Private[m.User]
    _roles: strawberry.Private[list[str] | None] = None
    _own: strawberry.Private[bool] = False  # shown to the user themself (e.g. just signed in)

    @classmethod
    def from_model(cls, user: m.User, roles: list[str] | None = None, *, own: bool = False) -> User:
        return cls(
            id=strawberry.ID(user.id),
            nickname=user.nickname,
            avatar_url=user.avatar_url,
            status=user.status,
            created_at=user.created_at,
            last_login_at=user.last_login_at,
            _model=user,
            _roles=roles,
            _own=own,
        )

    @strawberry.field(description="Full to the user and operators, masked to anyone else.")
    async def email(self, info: Info) -> str | None:
        value = self._model.email
        if value is None or await _sees_private(info, self):
            return value
        return mask_recipient(value)

    @strawberry.field(description="Full to the user and operators, masked to anyone else.")
    async def phone(self, info: Info) -> str | None:
        value = self._model.phone
        if value is None or await _sees_private(info, self):
            return value
        return mask_recipient(value)

    @strawberry.field
    async def real_name(self, info: Info) -> str | None:
        return self._model.real_name if await _sees_private(info, self) else None

    @strawberry.field
    def gender(self) -> int:
        return self._model.gender

    @strawberry.field
    def city(self) -> str | None:
        return self._model.city

    @strawberry.field(description="Platform roles and the roles held in tenants.")
    async def roles(self, info: Info) -> list[Role]:
        if self._roles is not None:
            return [Role(r) for r in self._roles]
        memberships = await info.context.loaders.memberships_by_user.load(self._model.id)
        held = set(self._model.roles) | {str(ms.role) for ms in memberships}
        return [Role(r) for r in sorted(held)]

    @strawberry.field(description="The tenants this user works for, and as what.")
    async def memberships(self, info: Info) -> list[TenantMember]:
        if not await _sees_private(info, self):
            return []
        found = await info.context.loaders.memberships_by_user.load(self._model.id)
        return [TenantMember.from_model(ms) for ms in found]


@strawberry.type
class AuthPayload:
    access_token: str
    refresh_token: str
    expires_in: int = strawberry.field(description="Seconds until the access token expires.")
    user: User
    is_new: bool = strawberry.field(description="True when this sign-in created the account.")

    @classmethod
    def from_signed_in(cls, signed: SignedIn) -> AuthPayload:
        return cls(
            access_token=signed.access_token,
            refresh_token=signed.refresh_token,
            expires_in=signed.expires_in,
            user=User.from_model(signed.user, signed.roles, own=True),
            is_new=signed.is_new,
        )


@strawberry.type
class TenantTheme:
    primary: str | None = None
    accent: str | None = None
    bg: str | None = None
    text: str | None = None
    muted: str | None = None


@strawberry.type
class TenantContact:
    phone: str | None = None
    email: str | None = None
    address: str | None = None


@strawberry.type(description="An organizer company or club selling on the platform.")
class Tenant:
    id: strawberry.ID
    name: str
    logo_url: str | None
    status: TenantStatus
    currency: str
    theme: TenantTheme
    contact: TenantContact
    features: JSON
    created_at: datetime
    _model: strawberry.Private[m.Tenant]

    @classmethod
    def from_model(cls, tenant: m.Tenant) -> Tenant:
        return cls(
            id=strawberry.ID(tenant.id),
            name=tenant.name,
            logo_url=tenant.logo_url,
            status=tenant.status,
            currency=tenant.currency,
            theme=TenantTheme(**tenant.theme),
            contact=TenantContact(**tenant.contact),
            features=JSON(dict(tenant.features)),
            created_at=tenant.created_at,
            _model=tenant,
        )

    @strawberry.field(description="The operator's audit opinion (staff and operators only).")
    async def audit_opinion(self, info: Info) -> str | None:
        viewer = await info.context.viewer()
        return self._model.audit_opinion if viewer.can_staff(self._model.id) else None


@strawberry.type
class TenantMember:
    tenant_id: strawberry.ID
    user_id: strawberry.ID
    role: Role
    created_at: datetime

    @classmethod
    def from_model(cls, membership: m.Membership) -> TenantMember:
        return cls(
            tenant_id=strawberry.ID(membership.tenant_id),
            user_id=strawberry.ID(membership.user_id),
            role=membership.role,
            created_at=membership.created_at,
        )

    @strawberry.field
    async def tenant(self, info: Info) -> Tenant | None:
        tenant = await info.context.loaders.tenant_by_id.load(self.tenant_id)
        return Tenant.from_model(tenant) if tenant else None


@strawberry.input
class RegisterInput:
    email: str | None = None
    phone: str | None = None
    sms_code: str | None = None
    password: str
    nickname: str


@strawberry.input
class LoginInput:
    email: str | None = None
    phone: str | None = None
    password: str | None = None
    sms_code: str | None = strawberry.field(
        default=None, description="Sign in by phone with a LOGIN code instead of a password."
    )


@strawberry.input
class ProfileInput:
    nickname: str | None = None
    avatar_url: str | None = None
    real_name: str | None = None
    gender: int | None = None
    city: str | None = None


@strawberry.input
class TenantThemeInput:
    primary: str | None = None
    accent: str | None = None
    bg: str | None = None
    text: str | None = None
    muted: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


@strawberry.input
class TenantContactInput:
    phone: str | None = None
    email: str | None = None
    address: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v is not None}


@strawberry.input
class CreateTenantInput:
    name: str
    logo_url: str | None = None
    currency: str = "CNY"
    theme: TenantThemeInput | None = None
    contact: TenantContactInput | None = None
    features: JSON | None = None


@strawberry.input
class UpdateTenantInput:
    name: str | None = None
    logo_url: str | None = None
    theme: TenantThemeInput | None = None
    contact: TenantContactInput | None = None
    features: JSON | None = None


@strawberry.input
class CreateUserInput:
    email: str
    password: str
    role: Role
    tenant_id: strawberry.ID | None = None
    nickname: str | None = None
