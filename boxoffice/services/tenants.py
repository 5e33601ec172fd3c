"""Tenants (organizer companies and clubs) and their staff."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from boxoffice.clock import utcnow
from boxoffice.db import Database
from boxoffice.errors import AlreadyExists, BadUserInput, NotFound
from boxoffice.models.identity import TENANT_ROLES, Membership, Role, Tenant, TenantStatus, User
from boxoffice.services import audit, outbox, validation
from boxoffice.services.viewer import Viewer

TENANT_FIELDS = ("name", "logo_url", "status", "currency", "audit_opinion")
_HEX_COLOR = "0123456789abcdefABCDEF"


def _clean_theme(theme: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (theme or {}).items():
        if key not in ("primary", "accent", "bg", "text", "muted"):
            raise BadUserInput(f"theme.{key} is not a theme colour", field=f"theme.{key}")
        if not (
            len(value) in (4, 7) and value[0] == "#" and all(c in _HEX_COLOR for c in value[1:])
        ):
            raise BadUserInput(
                f"theme.{key} must be a #rgb or #rrggbb colour", field=f"theme.{key}"
            )
        out[key] = value
    return out


def _clean_contact(contact: dict[str, str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (contact or {}).items():
        if key not in ("phone", "email", "address"):
            raise BadUserInput(f"contact.{key} is not a contact field", field=f"contact.{key}")
        out[key] = validation.text(value, field=f"contact.{key}", max_length=200)
    return out


async def create_tenant(
    *,
    db: Database,
    viewer: Viewer,
    name: str,
    logo_url: str | None = None,
    theme: dict[str, str] | None = None,
    features: dict[str, bool] | None = None,
    contact: dict[str, str] | None = None,
    currency: str = "CNY",
) -> Tenant:
    """OPERATOR only; the tenant is created ACTIVE."""
    viewer.require_role(Role.OPERATOR)
    currency = currency.upper()
    if len(currency) != 3 or not currency.isalpha():
        raise BadUserInput("currency is a 3-letter ISO code", field="currency")
    tenant = Tenant(
        name=validation.text(name, field="name", max_length=100),
        logo_url=validation.url(logo_url, field="logoUrl"),
        theme=_clean_theme(theme),
        features=dict(features or {}),
        contact=_clean_contact(contact),
        currency=currency,
        status=TenantStatus.ACTIVE,
    )
    async with db.write() as session:
        session.add(tenant)
        audit.record(
            session,
            viewer=viewer,
            action="tenant.create",
            target_type="Tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            after=audit.snapshot(tenant, TENANT_FIELDS),
        )
    return tenant


async def get_tenant(*, db: Database, viewer: Viewer, tenant_id: str) -> Tenant:
    """Active tenants are public (front-ends brand themselves with them); others only to
    their staff and operators."""
    async with db.read() as session:
        tenant = await session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("No such tenant.")
    if tenant.status != TenantStatus.ACTIVE and not viewer.can_staff(tenant.id, *TENANT_ROLES):
        raise NotFound("No such tenant.")
    return tenant


async def list_tenants(
    *, db: Database, viewer: Viewer, status: TenantStatus | None = None
) -> list[Tenant]:
    """Operators see every tenant, staff their own, everyone else the active ones."""
    query = select(Tenant).order_by(col(Tenant.name))
    if status is not None:
        query = query.where(Tenant.status == status)
    if not viewer.is_operator:
        own = list(viewer.tenants_with(*TENANT_ROLES))
        query = query.where((col(Tenant.status) == TenantStatus.ACTIVE) | col(Tenant.id).in_(own))
    async with db.read() as session:
        return list((await session.exec(query.limit(500))).all())


async def update_tenant(
    *,
    db: Database,
    viewer: Viewer,
    tenant_id: str,
    name: str | None = None,
    logo_url: str | None = None,
    theme: dict[str, str] | None = None,
    features: dict[str, bool] | None = None,
    contact: dict[str, str] | None = None,
) -> Tenant:
    viewer.require_staff(tenant_id, Role.ORGANIZER)
    async with db.write() as session:
        tenant = await session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise NotFound("No such tenant.")
        before = audit.snapshot(tenant, TENANT_FIELDS)
        if name is not None:
            tenant.name = validation.text(name, field="name", max_length=100)
        if logo_url is not None:
            tenant.logo_url = validation.url(logo_url, field="logoUrl")
        if theme is not None:
            tenant.theme = _clean_theme(theme)
        if features is not None:
            tenant.features = dict(features)
        if contact is not None:
            tenant.contact = _clean_contact(contact)
        tenant.updated_at = utcnow()
        session.add(tenant)
        audit.record(
            session,
            viewer=viewer,
            action="tenant.update",
            target_type="Tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            before=before,
            after=audit.snapshot(tenant, TENANT_FIELDS),
        )
    return tenant


async def add_member(
    *, db: Database, viewer: Viewer, tenant_id: str, user_id: str, role: Role
) -> Membership:
    """Operators add ORGANIZER or CHECKIN staff; organizers add CHECKIN staff to their tenant.
    The new role takes effect at the user's next sign-in or refresh."""
    if role not in TENANT_ROLES:
        raise BadUserInput("Only ORGANIZER and CHECKIN belong to a tenant.", field="role")
    viewer.require_staff(tenant_id, Role.ORGANIZER)
    if role == Role.ORGANIZER and not viewer.is_operator:
        viewer.require_role(Role.OPERATOR)
    try:
        async with db.write() as session:
            if await session.get(Tenant, tenant_id) is None:
                raise NotFound("No such tenant.")
            if await session.get(User, user_id) is None:
                raise NotFound("No such user.", field="userId")
            membership = Membership(tenant_id=tenant_id, user_id=user_id, role=role)
            session.add(membership)
            audit.record(
                session,
                viewer=viewer,
                action="tenant.add_member",
                target_type="User",
                target_id=user_id,
                tenant_id=tenant_id,
                after={"role": role.value},
            )
    except IntegrityError as exc:
        raise AlreadyExists("The user already has this role in this tenant.") from exc
    return membership


async def audit_merchant(
    *, db: Database, viewer: Viewer, tenant_id: str, approve: bool, opinion: str | None
) -> Tenant:
    """OPERATOR: a PENDING tenant becomes ACTIVE (approve) or REJECTED, with an opinion."""
    viewer.require_role(Role.OPERATOR)
    opinion = validation.optional_text(opinion, field="opinion", max_length=500)
    if not approve and not opinion:
        raise BadUserInput("Say why the merchant is rejected.", field="opinion")
    async with db.write() as session:
        tenant = await session.get(Tenant, tenant_id, with_for_update=True)
        if tenant is None:
            raise NotFound("No such tenant.")
        if tenant.status != TenantStatus.PENDING:
            raise BadUserInput(f"The tenant is {tenant.status}, not PENDING.", field="tenantId")
        before = audit.snapshot(tenant, TENANT_FIELDS)
        tenant.status = TenantStatus.ACTIVE if approve else TenantStatus.REJECTED
        tenant.audit_opinion = opinion
        tenant.updated_at = utcnow()
        session.add(tenant)
        audit.record(
            session,
            viewer=viewer,
            action="tenant.audit",
            target_type="Tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            before=before,
            after=audit.snapshot(tenant, TENANT_FIELDS),
        )
        outbox.emit(
            session,
            topic="merchant.audited",
            aggregate_type="Tenant",
            aggregate_id=tenant.id,
            tenant_id=tenant.id,
            payload={
                "resource": {
                    "id": tenant.id,
                    "name": tenant.name,
                    "status": tenant.status.value,
                    "auditOpinion": tenant.audit_opinion,
                }
            },
        )
    return tenant


async def apply_for_tenant(
    *,
    db: Database,
    viewer: Viewer,
    name: str,
    contact: dict[str, str] | None = None,
    logo_url: str | None = None,
) -> Tenant:
    """A signed-in user applies to sell on the platform: the tenant starts PENDING, the
    applicant becomes its ORGANIZER (at their next sign-in) and may prepare the catalog, but
    nothing is sold until an operator approves it (``auditMerchant``)."""
    user_id = viewer.require_user()
    tenant = Tenant(
        name=validation.text(name, field="name", max_length=100),
        logo_url=validation.url(logo_url, field="logoUrl"),
        contact=_clean_contact(contact),
        status=TenantStatus.PENDING,
    )
    async with db.write() as session:
        pending = await session.exec(
            select(Membership.id)
            .join(Tenant, col(Tenant.id) == col(Membership.tenant_id))
            .where(
                Membership.user_id == user_id,
                col(Tenant.status) == TenantStatus.PENDING,
            )
        )
        if pending.first() is not None:
            raise AlreadyExists("You already have an application waiting for review.")
        session.add(tenant)
        await session.flush()
        session.add(Membership(tenant_id=tenant.id, user_id=user_id, role=Role.ORGANIZER))
        audit.record(
            session,
            viewer=viewer,
            action="tenant.apply",
            target_type="Tenant",
            target_id=tenant.id,
            tenant_id=tenant.id,
            after=audit.snapshot(tenant, TENANT_FIELDS),
        )
    return tenant
