"""The Starlette application: GraphQL over HTTP and WebSocket, health, readiness, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from sqlmodel import col, select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLRequestData
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from boxoffice import demo_routes, payment_routes, pii
from boxoffice.config import Settings
from boxoffice.errors import BoxofficeError
from boxoffice.gc_tuning import tune_gc
from boxoffice.graphql_http import GraphQLHTTP
from boxoffice.http_middleware import (
    BodyLimitMiddleware,
    FastCORSMiddleware,
    RequestIdMiddleware,
)
from boxoffice.jobs import JobRunner
from boxoffice.models.identity import SandboxMessage
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.schema import build_schema
from boxoffice.schema.context import Context
from boxoffice.services import operation_limits
from boxoffice.subscriptions.transport import LimitedTransportWSHandler

log = logging.getLogger("boxoffice.app")

JSON_CONTENT_TYPE = "application/json"


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LimitedTransportWSHandler

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        return Context(request.app.state.runtime, request, response)

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Authenticate from the ``connection_init`` payload; a bad token closes with 4403."""
        try:
            await context.viewer()
        except BoxofficeError as exc:
            raise ConnectionRejectionError({"code": exc.code}) from exc
        return UNSET

    def encode_json(self, data: object) -> str:
        return orjson.dumps(data).decode()

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        """POST bodies must be ``application/json``: the types a browser may send cross-site
        without a preflight (form-urlencoded, multipart, text/plain) are refused with 415, so
        a foreign page cannot post an operation (CSRF)."""
        if request.method == "POST":
            essence, _params = parse_content_type(request.content_type or "")
            if essence.strip().lower() != JSON_CONTENT_TYPE:
                raise HTTPException(415, "Send operations as application/json.")
        return await super().parse_http_body(request)


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    for name, probe in (("database", rt.db.ping), ("broker", rt.backends.ping)):
        try:
            await probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return Response(rt.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def sandbox_messages(request: Request) -> Response:
    """Dev only: what the sandbox SMS and e-mail providers 'sent' (newest first)."""
    rt: Runtime = request.app.state.runtime
    query = select(SandboxMessage).order_by(col(SandboxMessage.created_at).desc()).limit(50)
    to = request.query_params.get("to")
    if to:
        query = query.where(col(SandboxMessage.recipient_hash) == pii.recipient_hash(to))
    async with rt.db.read() as session:
        rows = (await session.exec(query)).all()
    return JSONResponse(
        [
            {
                "channel": m.channel,
                "to": m.recipient,
                "subject": m.subject,
                "body": m.body,
                "createdAt": m.created_at.isoformat(),
            }
            for m in rows
        ]
    )


class BoxofficeApp(Starlette):
    """Starlette, with a short lane for ``POST /graphql`` (every operation a client sends):
    the same middleware (server errors, request ids, body limit, CORS) around the GraphQL
    endpoint itself, without the exception middleware and the router, which have nothing to
    do for it (the endpoint answers its own errors; the route matches one path, one method).
    About 20 us of CPU per request. Everything else goes through Starlette as usual."""

    def __init__(self, *, graphql_route: Route, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._graphql_route = graphql_route
        self._graphql_lane: ASGIApp | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        self._graphql_lane = None
        handlers = self.exception_handlers
        if self.max_body_size is None and not (handlers.keys() - {500, Exception}):
            lane: ASGIApp = self._graphql_route.app
            for cls, args, kwargs in reversed(self.user_middleware):
                lane = cls(lane, *args, **kwargs)
            error_handler = handlers.get(500) or handlers.get(Exception)
            self._graphql_lane = ServerErrorMiddleware(
                lane, handler=error_handler, debug=self.debug
            )
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == "/graphql"
            and scope["method"] == "POST"
            and not scope.get("root_path")
        ):
            scope["app"] = self
            if self.middleware_stack is None:
                self.middleware_stack = self.build_middleware_stack()
            lane = self._graphql_lane
            if lane is not None:
                # what the router would have put in the scope
                scope["router"] = self.router
                scope["route"] = self._graphql_route
                scope["endpoint"] = self._graphql_route.endpoint
                scope["path_params"] = {}
                await lane(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def serve_app() -> Starlette:
    """The app as ``boxoffice serve`` runs it (uvicorn's factory, in every worker process):
    ``create_app`` in a process whose garbage collector is tuned for many connections."""
    app = create_app()
    tune_gc()  # after the schema is built: it lives as long as the process
    return app


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> Starlette:
    """Build the app. With ``runtime`` the caller owns it (tests); otherwise the lifespan opens
    one from ``settings`` and closes it on shutdown."""
    settings = settings or (runtime.settings if runtime else Settings())
    settings.secrets  # noqa: B018 - fail at start, not on the first request, without secrets
    operation_limits.parse_overrides(settings.operation_limits)  # and on a malformed table
    schema = build_schema(settings)
    graphql = GraphQLView(
        schema,
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allow_queries_via_get=True,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=timedelta(seconds=settings.ws_init_timeout_seconds),
        max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        allowed_origins=settings.origins,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        rt = runtime or await open_runtime(settings)
        app.state.runtime = rt
        if runtime is None:
            await rt.db.fill_pool()  # before traffic: the first burst opens none
        jobs = JobRunner(rt) if settings.run_background_jobs else None
        if jobs:
            jobs.start()
        log.info("boxoffice ready", extra={"database": rt.db.dialect, "backends": rt.backends.kind})
        try:
            yield
        finally:
            if jobs:
                await jobs.stop()
            if runtime is None:
                await rt.close()

    graphql_route = Route(
        "/graphql", GraphQLHTTP(schema, settings, graphql), methods=["GET", "POST"]
    )
    routes: list[BaseRoute] = [
        graphql_route,
        WebSocketRoute("/graphql", graphql),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    routes.append(Route("/payments/{channel}/notify", payment_routes.notify, methods=["POST"]))
    if settings.sandbox_payments_enabled:
        routes.append(Route("/sandbox/messages", sandbox_messages))
        routes.append(
            Route(
                "/sandbox/payments/{payment_no}/complete",
                payment_routes.sandbox_complete,
                methods=["POST"],
            )
        )
    if settings.demo_page_enabled:
        routes.append(demo_routes.mount())
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
    ]
    if settings.origins:
        middleware.append(
            Middleware(
                FastCORSMiddleware,
                allow_origins=list(settings.origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-request-id"],
                expose_headers=["x-request-id"],
                max_age=600,
            )
        )
    return BoxofficeApp(
        graphql_route=graphql_route, routes=routes, middleware=middleware, lifespan=lifespan
    )
