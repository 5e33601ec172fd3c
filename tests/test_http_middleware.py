"""The pure-ASGI middleware against what it replaces or wraps."""

from __future__ import annotations

import httpx
import pytest
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from boxoffice.http_middleware import FastCORSMiddleware


def _endpoint(headers):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers()})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


@pytest.mark.parametrize("origins", [["*"], ["https://shop.example"]])
@pytest.mark.parametrize(
    "response_headers",
    [
        lambda: [(b"content-type", b"application/json")],
        lambda: [(b"vary", b"Accept-Encoding"), (b"content-type", b"application/json")],
        lambda: ((b"content-type", b"application/json"),),
    ],
)
@pytest.mark.parametrize(
    "request_headers",
    [
        {},
        {"origin": "https://shop.example"},
        {"origin": "https://elsewhere.example"},
        {"origin": "https://shop.example", "access-control-request-method": "POST"},
    ],
)
async def test_fast_cors_answers_as_starlettes(origins, response_headers, request_headers):
    answers = []
    for cls in (CORSMiddleware, FastCORSMiddleware):
        app = cls(
            _endpoint(response_headers),
            allow_origins=origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"],
            max_age=600,
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for method in ("POST", "OPTIONS"):
                response = await http.request(method, "/graphql", headers=request_headers)
                answers.append(
                    (response.status_code, response.headers.multi_items(), response.content)
                )
    assert answers[:2] == answers[2:]
