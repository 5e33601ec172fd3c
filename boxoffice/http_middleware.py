"""ASGI middleware: request ids and request body limits (pure ASGI, no per-request objects
beyond what the check needs)."""

from __future__ import annotations

import re

import orjson
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from boxoffice.ids import new_id
from boxoffice.services.audit import request_id_var

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Take ``X-Request-ID`` when it is sane, else make one; echo it; expose it to logs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        request_id = given if given and _REQUEST_ID.match(given) else new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 and a GraphQL-shaped error."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        body = orjson.dumps(
            {
                "errors": [
                    {
                        "message": f"Request body too large (limit {self.max_bytes} bytes).",
                        "extensions": {"code": "BAD_USER_INPUT", "status": 1413},
                    }
                ]
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = self.max_bytes + 1
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
                break
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await self._refuse(send)
        except Exception:
            if too_large and not response_started:
                await self._refuse(send)
                return
            raise


class _BodyTooLarge(Exception):
    pass


class FastCORSMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, without its per-request header objects for the requests
    that carry no ``Origin`` (API clients, load balancers, servers; a browser always sends
    one cross-origin): those get nothing but ``Vary: Origin`` on the response, exactly as
    Starlette adds it. About 15 us of CPU per request. Requests with an Origin (and
    preflights) go through Starlette's code unchanged."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, _value in scope["headers"]:
            if name == b"origin":
                await super().__call__(scope, receive, send)
                return

        async def send_with_vary(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                if isinstance(headers, list) and not any(n.lower() == b"vary" for n, _ in headers):
                    headers.append((b"vary", b"Origin"))
                else:  # a Vary to extend: Starlette's own way of doing it
                    await CORSMiddleware.send(self, message, send, _NO_HEADERS)
                    return
            await send(message)

        await self.app(scope, receive, send_with_vary)


_NO_HEADERS = Headers(raw=[])
