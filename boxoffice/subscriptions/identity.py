from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from boxoffice.backends.broker import channels
from boxoffice.models.identity import UserStatus
from boxoffice.schema.context import Info
from boxoffice.schema.identity import User
from boxoffice.services import accounts
from boxoffice.subscriptions import tracked


@strawberry.type
class IdentitySubscription:
    @strawberry.subscription(
        description="The caller's account after every change (profile, frozen). Ends when frozen."
    )
    async def account_updates(self, info: Info) -> AsyncGenerator[User, None]:
        context = info.context
        user_id = (await context.viewer()).require_user()
        rt = context.rt
        async with (
            tracked(context, "accountUpdates"),
            rt.backends.broker.subscribe(channels.account(user_id)) as messages,
        ):
            async for _message in messages:
                user = await accounts.get_user(rt.db, user_id)
                yield User.from_model(user)
                if user.status == UserStatus.FROZEN:
                    return
