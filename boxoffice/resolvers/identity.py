"""Root fields for accounts, sign-in and tenants."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from boxoffice.errors import BadUserInput
from boxoffice.schema.context import Info
from boxoffice.schema.enums import Role, SmsPurpose, TenantStatus
from boxoffice.schema.identity import (
    AuthPayload,
    CreateTenantInput,
    CreateUserInput,
    LoginInput,
    ProfileInput,
    RegisterInput,
    Tenant,
    TenantMember,
    UpdateTenantInput,
    User,
)
from boxoffice.services import accounts, personal_data, sign_in, sms_codes, tenants


def _features(value: object) -> dict[str, bool] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
    ):
        raise BadUserInput("features maps names to true or false", field="features")
    return dict(value)


@strawberry.type
class IdentityQuery:
    @strawberry.field(description="The signed-in user, or null.")
    async def me(self, info: Info) -> User | None:
        viewer = await info.context.viewer()
        if viewer.user_id is None:
            return None
        user = await accounts.get_user(info.context.rt.db, viewer.user_id)
        return User.from_model(user)

    @strawberry.field(
        description="Everything the platform holds about the caller — profile, sign-ins, "
        "orders, tickets, coupons, notifications, … — as one JSON document."
    )
    async def export_my_data(self, info: Info) -> JSON:
        document = await personal_data.export_my_data(
            db=info.context.rt.db, viewer=await info.context.viewer()
        )
        return JSON(document)

    @strawberry.field(description="A tenant: active ones are public, others only to their staff.")
    async def tenant(self, info: Info, id: strawberry.ID) -> Tenant:
        found = await tenants.get_tenant(
            db=info.context.rt.db, viewer=await info.context.viewer(), tenant_id=id
        )
        return Tenant.from_model(found)

    @strawberry.field
    async def tenants(self, info: Info, status: TenantStatus | None = None) -> list[Tenant]:
        found = await tenants.list_tenants(
            db=info.context.rt.db, viewer=await info.context.viewer(), status=status
        )
        return [Tenant.from_model(t) for t in found]


@strawberry.type
class IdentityMutation:
    @strawberry.mutation(description="Send a 6-digit code (5 minutes) to a phone.")
    async def send_sms_code(self, info: Info, phone: str, purpose: SmsPurpose) -> bool:
        rt = info.context.rt
        await sms_codes.send_code(
            db=rt.db,
            codes=rt.backends.codes,
            rate_limiter=rt.backends.rate_limiter,
            sms=rt.messaging,
            phone=phone,
            purpose=purpose,
            ip=info.context.client_ip,
        )
        return True

    @strawberry.mutation
    async def register(self, info: Info, input: RegisterInput) -> AuthPayload:
        rt = info.context.rt
        signed = await sign_in.sign_up(
            db=rt.db,
            kit=rt.auth,
            codes=rt.backends.codes,
            rate_limiter=rt.backends.rate_limiter,
            email=input.email,
            phone=input.phone,
            sms_code=input.sms_code,
            password=input.password,
            nickname=input.nickname,
            ip=info.context.client_ip,
        )
        return AuthPayload.from_signed_in(signed)

    @strawberry.mutation
    async def login(self, info: Info, input: LoginInput) -> AuthPayload:
        rt = info.context.rt
        signed = await sign_in.login(
            db=rt.db,
            kit=rt.auth,
            codes=rt.backends.codes,
            rate_limiter=rt.backends.rate_limiter,
            email=input.email,
            phone=input.phone,
            password=input.password,
            sms_code=input.sms_code,
            ip=info.context.client_ip,
        )
        return AuthPayload.from_signed_in(signed)

    @strawberry.mutation(
        description="Sign in with a WeChat code; the first sign-in creates the account."
    )
    async def login_with_wechat(
        self, info: Info, code: str, tenant_id: strawberry.ID | None = None
    ) -> AuthPayload:
        rt = info.context.rt
        signed = await sign_in.login_with_wechat(
            db=rt.db,
            kit=rt.auth,
            wechat=rt.wechat,
            code=code,
            tenant_id=tenant_id,
            ip=info.context.client_ip,
        )
        return AuthPayload.from_signed_in(signed)

    @strawberry.mutation(description="Rotate a refresh token; reusing an old one ends the sign-in.")
    async def refresh_token(self, info: Info, refresh_token: str) -> AuthPayload:
        rt = info.context.rt
        signed = await sign_in.refresh(
            db=rt.db,
            kit=rt.auth,
            codes=rt.backends.codes,
            refresh_token=refresh_token,
            ip=info.context.client_ip,
        )
        return AuthPayload.from_signed_in(signed)

    @strawberry.mutation(description="End the sign-in the refresh token belongs to.")
    async def logout(self, info: Info, refresh_token: str) -> bool:
        rt = info.context.rt
        await sign_in.logout(
            db=rt.db, kit=rt.auth, codes=rt.backends.codes, refresh_token=refresh_token
        )
        return True

    @strawberry.mutation(description="Change the password; every other sign-in ends.")
    async def change_password(self, info: Info, old_password: str, new_password: str) -> bool:
        rt = info.context.rt
        await accounts.change_password(
            db=rt.db,
            codes=rt.backends.codes,
            hasher=rt.auth.hasher,
            viewer=await info.context.viewer(),
            old_password=old_password,
            new_password=new_password,
            access_ttl_seconds=rt.auth.tokens.ttl_seconds,
        )
        return True

    @strawberry.mutation(description="Set a new password with a RESET code; every sign-in ends.")
    async def reset_password(
        self, info: Info, phone: str, sms_code: str, new_password: str
    ) -> bool:
        rt = info.context.rt
        await accounts.reset_password(
            db=rt.db,
            codes=rt.backends.codes,
            hasher=rt.auth.hasher,
            phone=phone,
            sms_code=sms_code,
            new_password=new_password,
            access_ttl_seconds=rt.auth.tokens.ttl_seconds,
        )
        return True

    @strawberry.mutation(
        description="Delete the caller's account: personal data is wiped and every sign-in "
        "ends; orders and tickets are kept, anonymous, for accounting."
    )
    async def delete_my_account(self, info: Info, password: str) -> bool:
        rt = info.context.rt
        await personal_data.delete_my_account(
            db=rt.db,
            codes=rt.backends.codes,
            broker=rt.backends.broker,
            hasher=rt.auth.hasher,
            viewer=await info.context.viewer(),
            password=password,
            access_ttl_seconds=rt.auth.tokens.ttl_seconds,
        )
        return True

    @strawberry.mutation
    async def update_profile(self, info: Info, input: ProfileInput) -> User:
        rt = info.context.rt
        user = await accounts.update_profile(
            db=rt.db,
            broker=rt.backends.broker,
            viewer=await info.context.viewer(),
            nickname=input.nickname,
            avatar_url=input.avatar_url,
            real_name=input.real_name,
            gender=input.gender,
            city=input.city,
        )
        return User.from_model(user)

    @strawberry.mutation(description="OPERATOR: create an account with a role.")
    async def create_user(self, info: Info, input: CreateUserInput) -> User:
        rt = info.context.rt
        viewer = await info.context.viewer()
        viewer.require_role(Role.OPERATOR)
        user = await accounts.create_user(
            db=rt.db,
            hasher=rt.auth.hasher,
            email=input.email,
            password=input.password,
            role=Role(input.role),
            tenant_id=input.tenant_id,
            nickname=input.nickname,
            viewer=viewer,
        )
        return User.from_model(user)

    @strawberry.mutation(
        description="OPERATOR: freeze an account; its tokens stop working at once."
    )
    async def freeze_user(self, info: Info, user_id: strawberry.ID) -> User:
        return await _set_frozen(info, user_id, frozen=True)

    @strawberry.mutation(description="OPERATOR: unfreeze an account (old tokens stay revoked).")
    async def unfreeze_user(self, info: Info, user_id: strawberry.ID) -> User:
        return await _set_frozen(info, user_id, frozen=False)

    @strawberry.mutation(description="OPERATOR: create a tenant (ACTIVE).")
    async def create_tenant(self, info: Info, input: CreateTenantInput) -> Tenant:
        tenant = await tenants.create_tenant(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            name=input.name,
            logo_url=input.logo_url,
            currency=input.currency,
            theme=input.theme.to_dict() if input.theme else None,
            contact=input.contact.to_dict() if input.contact else None,
            features=_features(input.features),
        )
        return Tenant.from_model(tenant)

    @strawberry.mutation(
        description="Apply to sell on the platform: a PENDING tenant with you as its organizer, "
        "until an operator audits it."
    )
    async def apply_for_tenant(self, info: Info, input: CreateTenantInput) -> Tenant:
        tenant = await tenants.apply_for_tenant(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            name=input.name,
            logo_url=input.logo_url,
            contact=input.contact.to_dict() if input.contact else None,
        )
        return Tenant.from_model(tenant)

    @strawberry.mutation(description="ORGANIZER of the tenant or OPERATOR.")
    async def update_tenant(
        self, info: Info, id: strawberry.ID, input: UpdateTenantInput
    ) -> Tenant:
        tenant = await tenants.update_tenant(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=id,
            name=input.name,
            logo_url=input.logo_url,
            theme=input.theme.to_dict() if input.theme else None,
            contact=input.contact.to_dict() if input.contact else None,
            features=_features(input.features),
        )
        return Tenant.from_model(tenant)

    @strawberry.mutation(
        description="Give a user a tenant role: operators add organizers, organizers gate staff."
    )
    async def add_tenant_member(
        self, info: Info, tenant_id: strawberry.ID, user_id: strawberry.ID, role: Role
    ) -> TenantMember:
        membership = await tenants.add_member(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            user_id=user_id,
            role=Role(role),
        )
        return TenantMember.from_model(membership)

    @strawberry.mutation(description="OPERATOR: approve or reject a PENDING merchant.")
    async def audit_merchant(
        self, info: Info, tenant_id: strawberry.ID, approve: bool, opinion: str | None = None
    ) -> Tenant:
        tenant = await tenants.audit_merchant(
            db=info.context.rt.db,
            viewer=await info.context.viewer(),
            tenant_id=tenant_id,
            approve=approve,
            opinion=opinion,
        )
        return Tenant.from_model(tenant)


async def _set_frozen(info: Info, user_id: str, *, frozen: bool) -> User:
    rt = info.context.rt
    user = await accounts.set_frozen(
        db=rt.db,
        codes=rt.backends.codes,
        broker=rt.backends.broker,
        viewer=await info.context.viewer(),
        user_id=user_id,
        frozen=frozen,
        access_ttl_seconds=rt.auth.tokens.ttl_seconds,
    )
    return User.from_model(user)
