"""The live seat map demo page at ``/demo``: static files (``demo_page/``) under a strict
Content-Security-Policy. The page talks to the API only as a front-end would: GraphQL over
HTTP and WebSocket on the same origin, and the sandbox payment endpoint."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

PAGE_DIRECTORY = Path(__file__).parent / "demo_page"

# Scripts and styles from the page's own files only (no inline code), images from itself or
# data: URIs (the tickets' QR codes), requests and WebSockets to its own origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


class DemoFiles(StaticFiles):
    """The page's files, each answered with the security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


def mount() -> Mount:
    """``/demo`` (redirected to ``/demo/``, the page) and its files."""
    return Mount("/demo", app=DemoFiles(directory=PAGE_DIRECTORY, html=True), name="demo")
