"""``boxoffice seed-demo``: an idempotent demo platform to click through (accounts here, the
catalog in ``demo_catalog``).

Re-running it finds what exists (by e-mail and by name) and creates only what is missing.
"""

from __future__ import annotations

from sqlmodel import col, select

from boxoffice import pii
from boxoffice.demo_catalog import seed_catalog
from boxoffice.demo_coupons import seed_coupons
from boxoffice.errors import AlreadyExists
from boxoffice.models.identity import Membership, Role, Tenant, TenantStatus, User
from boxoffice.runtime import Runtime
from boxoffice.services.accounts import create_user

DEMO_PASSWORD = "boxoffice-demo-1"  # noqa: S105 - published demo accounts, not a secret
DEMO_TENANTS = (
    ("Laugh Lab Shanghai", {"primary": "#e4572e", "accent": "#29335c", "bg": "#fffaf0"}),
    ("Starlight Live Concerts", {"primary": "#1b998b", "accent": "#2d3047", "bg": "#ffffff"}),
)
DEMO_ACCOUNTS = (
    ("operator@demo.boxoffice.dev", Role.OPERATOR, None),
    ("agent@demo.boxoffice.dev", Role.AGENT, None),
    ("organizer@laughlab.demo", Role.ORGANIZER, 0),
    ("checkin@laughlab.demo", Role.CHECKIN, 0),
    ("organizer@starlight.demo", Role.ORGANIZER, 1),
    ("fan@demo.boxoffice.dev", Role.CUSTOMER, None),
    ("friend@demo.boxoffice.dev", Role.CUSTOMER, None),  # a second buyer for the /demo page
)


async def _tenant(rt: Runtime, name: str, theme: dict[str, str]) -> Tenant:
    async with rt.db.write() as session:
        found = (await session.exec(select(Tenant).where(Tenant.name == name))).first()
        if found is not None:
            return found
        tenant = Tenant(name=name, theme=theme, status=TenantStatus.ACTIVE, currency="CNY")
        session.add(tenant)
        return tenant


async def _account(rt: Runtime, email: str, role: Role, tenant: Tenant | None) -> User:
    try:
        return await create_user(
            db=rt.db,
            hasher=rt.auth.hasher,
            email=email,
            password=DEMO_PASSWORD,
            role=role,
            tenant_id=tenant.id if tenant else None,
        )
    except AlreadyExists:
        async with rt.db.write() as session:
            found = select(User).where(col(User.email_hash) == pii.email_hash(email))
            user = (await session.exec(found)).one()
            if tenant is not None:
                held = await session.exec(
                    select(Membership).where(
                        Membership.user_id == user.id,
                        Membership.tenant_id == tenant.id,
                        Membership.role == role,
                    )
                )
                if held.first() is None:
                    session.add(Membership(tenant_id=tenant.id, user_id=user.id, role=role))
            return user


async def seed_demo(rt: Runtime) -> list[str]:
    """Create (or find) the demo data; return the lines to print."""
    tenants = [await _tenant(rt, name, theme) for name, theme in DEMO_TENANTS]
    lines = [f"tenant  {t.id}  {t.name}" for t in tenants]
    operator: User | None = None
    for email, role, tenant_index in DEMO_ACCOUNTS:
        tenant = tenants[tenant_index] if tenant_index is not None else None
        user = await _account(rt, email, role, tenant)
        if role == Role.OPERATOR:
            operator = user
        where = f"  ({tenant.name})" if tenant else ""
        lines.append(f"{role.value:<9} {email}  password: {DEMO_PASSWORD}  id: {user.id}{where}")
    assert operator is not None
    lines += await seed_catalog(rt, tenants, operator)
    lines += await seed_coupons(rt, tenants, operator)
    return lines
