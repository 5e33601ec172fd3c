"""The bare baseline for holds: a Starlette endpoint that reads the same request body and runs
the same seat-ledger Lua script as ``createHold`` (no GraphQL, no auth, no rules)."""

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
from boxoffice.backends.seat_ledger import HoldRequest
from boxoffice.backends.seat_ledger.redis import RedisSeatLedger
from boxoffice.ids import new_id

STATE: dict[str, object] = {}


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    redis = connect(os.environ["BOXOFFICE_REDIS_URL"])
    STATE["ledger"] = RedisSeatLedger(redis)
    yield
    await redis.aclose()


async def hold(request: Request) -> Response:
    body = orjson.loads(await request.body())
    wanted = body["variables"]["i"]
    ledger: RedisSeatLedger = STATE["ledger"]  # type: ignore[assignment]
    held = await ledger.hold(
        wanted["sessionId"],
        HoldRequest(
            hold_id=new_id(),
            user_id="bench",
            ttl_ms=120_000,
            tier_id=wanted["tierId"],
            quantity=wanted["quantity"],
            meta="{}",
        ),
        now_ms=int(time.time() * 1000),
    )
    return Response(
        orjson.dumps(
            {
                "data": {
                    "createHold": {
                        "token": f"{wanted['sessionId']}.{held.hold_id}",
                        "expiresAt": held.expires_at_ms,
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
