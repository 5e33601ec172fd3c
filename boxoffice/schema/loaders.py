"""DataLoaders, named ``XByYLoader``, created per request by ``Context.loaders``.

Each batch opens its own short read session, so sibling fields that strawberry resolves
concurrently never share one ``AsyncSession``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from sqlmodel import col, select
from strawberry.dataloader import DataLoader

from boxoffice.models.identity import Membership, Tenant, User
from boxoffice.models.webhooks import WebhookAttempt
from boxoffice.runtime import Runtime
from boxoffice.services import webhooks
from boxoffice.services.accounts import LIVE_TENANT_STATUSES


class Loaders:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @cached_property
    def user_by_id(self) -> DataLoader[str, User | None]:
        async def load(ids: Sequence[str]) -> list[User | None]:
            async with self.rt.db.read() as session:
                rows = await session.exec(select(User).where(col(User.id).in_(ids)))
                found = {u.id: u for u in rows.all()}
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    @cached_property
    def tenant_by_id(self) -> DataLoader[str, Tenant | None]:
        async def load(ids: Sequence[str]) -> list[Tenant | None]:
            async with self.rt.db.read() as session:
                rows = await session.exec(select(Tenant).where(col(Tenant.id).in_(ids)))
                found = {t.id: t for t in rows.all()}
            return [found.get(i) for i in ids]

        return DataLoader(load_fn=load)

    @cached_property
    def memberships_by_user(self) -> DataLoader[str, list[Membership]]:
        async def load(user_ids: Sequence[str]) -> list[list[Membership]]:
            async with self.rt.db.read() as session:
                rows = await session.exec(
                    select(Membership)
                    .join(Tenant, col(Tenant.id) == col(Membership.tenant_id))
                    .where(
                        col(Membership.user_id).in_(user_ids),
                        col(Tenant.status).in_(LIVE_TENANT_STATUSES),
                    )
                )
                grouped: dict[str, list[Membership]] = {u: [] for u in user_ids}
                for membership in rows.all():
                    grouped[membership.user_id].append(membership)
            return [grouped[u] for u in user_ids]

        return DataLoader(load_fn=load)

    @cached_property
    def webhook_attempts_by_delivery(self) -> DataLoader[str, list[WebhookAttempt]]:
        async def load(delivery_ids: Sequence[str]) -> list[list[WebhookAttempt]]:
            grouped = await webhooks.attempts_of(self.rt.db, delivery_ids)
            return [grouped[d] for d in delivery_ids]

        return DataLoader(load_fn=load)
