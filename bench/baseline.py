"""Bare Starlette endpoints: the baselines every benchmark is measured against.

``BENCH_BODY_FILE`` names a file whose bytes ``POST /graphql`` answers verbatim, so the
baseline serves exactly what the GraphQL endpoint serves.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_BODY = (
    Path(os.environ["BENCH_BODY_FILE"]).read_bytes() if os.environ.get("BENCH_BODY_FILE") else b"{}"
)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def same_bytes(request: Request) -> Response:
    await request.body()
    return Response(_BODY, media_type="application/json")


app = Starlette(
    routes=[Route("/healthz", healthz), Route("/graphql", same_bytes, methods=["POST"])]
)
