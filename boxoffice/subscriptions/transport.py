"""The graphql-transport-ws handler, with limits on operations in flight.

strawberry closes protocol abuse with the protocol's codes (4400 malformed message, 4401
subscribe before ack, 4403 refused token, 4408 no ``connection_init`` in time, 4409 an id
already in use, 4429 a second ``connection_init``); this handler also closes with 4400 the
frames strawberry crashed on (JSON that is not an object, a payload that is not one, a query
that is not a string). It adds the limits, answered as
an ``error`` message for that operation with ``code: RATE_LIMITED`` (the socket stays open):

- per connection: ``BOXOFFICE_MAX_SUBSCRIPTIONS_PER_CONNECTION`` operations in flight;
- per user, across all their sockets and processes: ``BOXOFFICE_MAX_SUBSCRIPTIONS_PER_USER``,
  counted in the ``Slots`` backend. Each operation holds a slot on a lease this connection
  renews while it lives; the slot is released when the operation ends (completed, cancelled
  by the client, or the socket closed), and lapses on its own if the process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    Message,
    SubscribeMessage,
)

from boxoffice.errors import BoxofficeError, RateLimited
from boxoffice.ids import new_id

if TYPE_CHECKING:
    from boxoffice.schema.context import Context

log = logging.getLogger("boxoffice.subscriptions")

SLOT_LEASE_SECONDS = 60.0


def _slot_key(user_id: str) -> str:
    return f"subs:user:{user_id}"


class LimitedTransportWSHandler(BaseGraphQLTransportWSHandler["Context", None]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connection_id = new_id()
        self._slots: dict[Operation[Context, None], tuple[str, str]] = {}
        self._renewer: asyncio.Task[None] | None = None

    async def _refuse(self, op_id: str, message: str) -> None:
        error = RateLimited(message)
        await self.send_message(
            {
                "id": op_id,
                "type": "error",
                "payload": [{"message": error.message, "extensions": error.extensions()}],
            }
        )

    async def _user_id(self) -> str | None:
        try:
            viewer = await self.context.viewer()
        except BoxofficeError:
            return None  # the operation itself answers UNAUTHENTICATED
        return viewer.user_id

    async def handle_message(self, message: Message) -> None:
        """Frames that are JSON but not an object crashed strawberry's handler (TypeError):
        they close with 4400 like any malformed message."""
        if not isinstance(message, dict):
            await self.handle_invalid_message("A message must be a JSON object")
            return
        await super().handle_message(message)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        payload = message.get("payload")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await self.handle_invalid_message("A subscribe message needs a payload with a query")
            return
        op_id = message.get("id")
        if (
            not self.connection_acknowledged
            or not isinstance(op_id, str)
            or op_id in self.operations
        ):
            await super().handle_subscribe(message)  # 4401, 4400, 4409
            return
        limit = self.max_subscriptions_per_connection
        if limit is not None and len(self.operations) >= limit:
            await self._refuse(op_id, f"At most {limit} operations per connection.")
            return
        user_id = await self._user_id()
        holder = f"{self._connection_id}:{op_id}:{new_id()}"
        if user_id is not None:
            per_user = self.context.rt.settings.max_subscriptions_per_user
            if not await self.context.rt.backends.slots.acquire(
                _slot_key(user_id), holder, limit=per_user, lease_seconds=SLOT_LEASE_SECONDS
            ):
                await self._refuse(op_id, f"At most {per_user} subscriptions per user.")
                return
        try:
            await super().handle_subscribe(message)
        finally:
            operation = self.operations.get(op_id)
            if user_id is not None:
                if operation is None:
                    await self._release(_slot_key(user_id), holder)
                else:
                    self._slots[operation] = (_slot_key(user_id), holder)
                    self._start_renewing()

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        try:
            await super().run_operation(operation)
        finally:
            held = self._slots.pop(operation, None)
            if held is not None:
                await self._release(*held)

    async def _release(self, key: str, holder: str) -> None:
        try:
            await self.context.rt.backends.slots.release(key, holder)
        except Exception:  # the lease lapses on its own
            log.warning("could not release a subscription slot", exc_info=True)

    def _start_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        slots = self.context.rt.backends.slots
        while self._slots:
            await asyncio.sleep(SLOT_LEASE_SECONDS / 3)
            by_key: dict[str, list[str]] = {}
            for key, holder in list(self._slots.values()):
                by_key.setdefault(key, []).append(holder)
            for key, holders in by_key.items():
                try:
                    await slots.renew(key, holders, lease_seconds=SLOT_LEASE_SECONDS)
                except Exception:
                    log.warning("could not renew subscription slots", exc_info=True)

    async def shutdown(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        await super().shutdown()
