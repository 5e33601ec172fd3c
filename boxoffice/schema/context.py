"""The per-request (or per-WebSocket-connection) context handed to every resolver."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection
from strawberry.types import Info as _Info

from boxoffice.errors import BoxofficeError, Unauthenticated
from boxoffice.services import revocation
from boxoffice.services.viewer import Viewer

if TYPE_CHECKING:
    from boxoffice.backends.rate_limits import RateDecision
    from boxoffice.response_cache import Recording
    from boxoffice.runtime import Runtime
    from boxoffice.schema.loaders import Loaders


class Context:
    """``rt`` is the process runtime. Loaders are created once per HTTP request; a WebSocket
    connection gets fresh ones per use, since its context lives as long as the socket."""

    def __init__(self, rt: Runtime, connection: HTTPConnection, response: Any = None) -> None:
        self.rt = rt
        self.connection = connection
        self.response = response
        self.is_websocket = connection.scope["type"] == "websocket"
        self.connection_params: dict[str, Any] | None = None
        self._viewer: Viewer | None = None
        self._viewer_error: BoxofficeError | None = None
        # set while an anonymous catalog answer is executed to be cached (see response_cache)
        self.recording: Recording | None = None

    @property
    def request_id(self) -> str | None:
        return self.connection.scope.get("state", {}).get("request_id")

    @cached_property
    def client_ip(self) -> str | None:
        client = self.connection.client
        return client.host if client else None

    @property
    def loaders(self) -> Loaders:
        from boxoffice.schema.loaders import Loaders

        if self.is_websocket:
            return Loaders(self.rt)
        cached: Loaders | None = self.__dict__.get("_loaders")
        if cached is None:
            cached = self.__dict__["_loaders"] = Loaders(self.rt)
        return cached

    def _bearer(self) -> str | None:
        if self.is_websocket:
            params = self.connection_params or {}
            raw = params.get("Authorization") or params.get("authorization")
            header = raw if isinstance(raw, str) else None
        else:
            header = self.connection.headers.get("authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Use 'Authorization: Bearer <token>'.", reason="TOKEN_INVALID")
        return token.strip()

    async def viewer(self) -> Viewer:
        """Who is asking. Anonymous without a token; a bad, expired or revoked token raises.
        Over WebSocket the revocation markers are checked again on every call."""
        if self._viewer_error is not None:
            raise self._viewer_error
        if self._viewer is not None and not (self.is_websocket and self._viewer.user_id):
            return self._viewer
        return (await self._authenticate(None))[0]

    async def viewer_counting(
        self, hit_for: Callable[[str], revocation.Hit]
    ) -> tuple[Viewer, RateDecision | None]:
        """``viewer()``, and when it authenticates a signed-in HTTP request just now, the
        rate-limit hit ``hit_for(user_id)`` counted in the revocation markers' round trip
        (``revocation.check``). The decision, or None when nothing was counted: the caller
        counts as it would after ``viewer()``."""
        if self._viewer is not None or self._viewer_error is not None or self.is_websocket:
            return await self.viewer(), None
        return await self._authenticate(hit_for)

    async def _authenticate(
        self, hit_for: Callable[[str], revocation.Hit] | None
    ) -> tuple[Viewer, RateDecision | None]:
        try:
            token = self._bearer()
            if token is None:
                self._viewer = Viewer(ip=self.client_ip)
                return self._viewer, None
            claims = self.rt.auth.tokens.decode(token)
            # counted along only for a user this process knows exists: the check after the
            # markers is then in memory (an unknown user's token is refused without a count)
            hit = (
                hit_for(claims.user_id)
                if hit_for is not None and self.rt.live_users.knows(claims.user_id)
                else None
            )
            counted = await revocation.check(self.rt.backends.codes, claims, db=self.rt.db, hit=hit)
            await self.rt.live_users.require(self.rt.db, claims.user_id)
        except BoxofficeError as exc:
            if not self.is_websocket:
                self._viewer_error = exc
            raise
        self._viewer = Viewer(
            user_id=claims.user_id,
            roles=claims.roles,
            tenant_roles=claims.tenant_roles,
            session_id=claims.session_id,
            token_id=claims.token_id,
            ip=self.client_ip,
        )
        return self._viewer, counted


Info = _Info[Context, None]
