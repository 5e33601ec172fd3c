"""A minimal graphql-transport-ws client for tests (what a front-end's client does)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect


class GraphQLWebSocket:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._next_id = 0

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def receive(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        return json.loads(raw)

    async def init(self, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        await self.send({"type": "connection_init", "payload": payload or {}})
        return await self.receive()

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._next_id += 1
        op_id = str(self._next_id)
        await self.send(
            {
                "id": op_id,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return op_id

    async def next_payload(self, op_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next ``next`` message of ``op_id`` (pings answered, other ops skipped)."""
        while True:
            message = await self.receive(timeout)
            if message.get("type") == "ping":
                await self.send({"type": "pong"})
                continue
            if message.get("id") != op_id:
                continue
            if message["type"] == "next":
                return message["payload"]
            raise AssertionError(f"expected next for {op_id}, got {message}")


@asynccontextmanager
async def graphql_ws(url: str, **kwargs: Any) -> AsyncIterator[GraphQLWebSocket]:
    async with connect(url, subprotocols=["graphql-transport-ws"], **kwargs) as ws:  # type: ignore[list-item]
        yield GraphQLWebSocket(ws)
