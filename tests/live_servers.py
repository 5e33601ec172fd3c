"""Serve a small Starlette app on loopback for the duration of a block: the stand-in for an
outside system (a payment provider, a callback receiver) that our code talks to over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from tests.conftest import LiveServer


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[LiveServer]:
    server = LiveServer(app)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
