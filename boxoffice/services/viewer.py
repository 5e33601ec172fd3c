"""Who is asking, and the authorization checks every resolver uses.

Tenant scoping: staff of one tenant asking for another tenant's object get ``NOT_FOUND``,
exactly as if it did not exist; a role that may never do something gets ``FORBIDDEN``.
Operators see every tenant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from boxoffice.errors import Forbidden, NotFound, Unauthenticated
from boxoffice.models.identity import Role


@dataclass(frozen=True, slots=True)
class Viewer:
    user_id: str | None = None
    roles: frozenset[str] = frozenset()
    tenant_roles: Mapping[str, frozenset[str]] = field(default_factory=dict)
    session_id: str | None = None
    token_id: str | None = None
    ip: str | None = None

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None

    @property
    def is_operator(self) -> bool:
        return Role.OPERATOR in self.roles

    def all_roles(self) -> frozenset[str]:
        out = set(self.roles)
        for roles in self.tenant_roles.values():
            out |= roles
        return frozenset(out)

    def require_user(self) -> str:
        if self.user_id is None:
            raise Unauthenticated()
        return self.user_id

    def require_role(self, *roles: Role) -> str:
        """The user id, if the viewer holds one of ``roles`` (anywhere)."""
        user_id = self.require_user()
        if not (self.all_roles() & set(roles)):
            raise Forbidden()
        return user_id

    def tenants_with(self, *roles: Role) -> frozenset[str]:
        wanted = set(roles)
        return frozenset(t for t, held in self.tenant_roles.items() if held & wanted)

    def can_staff(self, tenant_id: str, *roles: Role) -> bool:
        if self.is_operator:
            return True
        return bool(self.tenant_roles.get(tenant_id, frozenset()) & set(roles or (Role.ORGANIZER,)))

    def require_staff(self, tenant_id: str | None, *roles: Role) -> str:
        """Allow operators, and staff of ``tenant_id`` holding one of ``roles`` (ORGANIZER by
        default). Staff of other tenants get NOT_FOUND; everyone else FORBIDDEN."""
        user_id = self.require_user()
        roles = roles or (Role.ORGANIZER,)
        if self.is_operator:
            return user_id
        if tenant_id is not None and self.tenant_roles.get(tenant_id, frozenset()) & set(roles):
            return user_id
        if self.tenants_with(*roles):
            raise NotFound()
        raise Forbidden()


ANONYMOUS = Viewer()
