"""The bare baseline for holds: a Starlette endpoint that reads the same request body and runs
the same seat-ledger Lua script as ``createHold`` through plain redis-py (no GraphQL, no auth,
no rules, none of boxoffice's own Redis client)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from boxoffice.backends.redis_client import connect
from boxoffice.backends.seat_ledger.redis import _source, prefix
from boxoffice.ids import new_id

STATE: dict[str, object] = {}


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    redis = connect(os.environ["BOXOFFICE_REDIS_URL"])
    # the ledger's own hold script, called through plain redis-py (what a bare service would do)
    STATE["hold"] = redis.register_script(_source("prelude") + "\n" + _source("hold"))
    yield
    await redis.aclose()


async def hold(request: Request) -> Response:
    body = orjson.loads(await request.body())
    wanted = body["variables"]["i"]
    session_id = wanted["sessionId"]
    hold_id = new_id()
    raw = await STATE["hold"](  # type: ignore[operator]
        keys=[prefix(session_id)],
        args=[
            hold_id,
            "bench",
            int(time.time() * 1000),
            120_000,
            -1,
            "",
            "{}",
            "tier",
            "0",
            wanted["tierId"],
            wanted["quantity"],
        ],
    )
    reply = orjson.loads(raw)
    if "err" in reply:
        return Response(orjson.dumps({"errors": [{"message": reply["err"]}]}))
    return Response(
        orjson.dumps(
            {
                "data": {
                    "createHold": {
                        "token": f"{session_id}.{hold_id}",
                        "expiresAt": reply["hold"]["e"],
                    }
                }
            }
        ),
        media_type="application/json",
    )


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


app = Starlette(
    routes=[Route("/hold", hold, methods=["POST"]), Route("/healthz", healthz)], lifespan=lifespan
)
