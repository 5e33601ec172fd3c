"""Where webhooks may be sent: the SSRF guard.

A target is an http(s) URL without credentials whose host resolves only to public addresses —
not loopback, private, link-local, shared (CGNAT), multicast, reserved or unspecified, IPv4
inside IPv6 included. The URL is checked when an endpoint is created or changed, and resolved
and checked again before every delivery; the request then connects to the address that was
checked (with the original name in ``Host`` and TLS SNI/certificate checks), so a DNS answer
that changes between the check and the connection (rebinding) cannot redirect it.

With ``allow_private`` (dev and test by default, ``BOXOFFICE_WEBHOOK_ALLOW_PRIVATE_ADDRESSES``)
only the address checks are skipped.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from boxoffice.errors import BadUserInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 500
RESOLVE_TIMEOUT_SECONDS = 5.0


class TargetRefused(Exception):
    """The URL is not a permitted webhook target; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address to connect to."""

    url: str
    scheme: str
    host: str  # as written (lower case), without brackets
    port: int
    path: str  # path and query, at least "/"
    address: str  # the checked IP to connect to

    @property
    def connect_url(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.scheme}://{literal}:{self.port}{self.path}"

    @property
    def host_header(self) -> str:
        literal = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return literal if self.port == default else f"{literal}:{self.port}"


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or _nat64(address)
        if embedded is not None:
            return forbidden_reason(embedded)
    for reason, hit in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
        ("not globally routable", not address.is_global),
    ):
        if hit:
            return reason
    return None


def _nat64(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address in ipaddress.IPv6Network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _split(url: str) -> SplitResult:
    """Syntax only: raises ``TargetRefused``."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise TargetRefused("the URL is not valid") from exc
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise TargetRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not allowed")
    if any(ch.isspace() for ch in url):
        raise TargetRefused("the URL contains spaces")
    return parts


async def _resolve(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise TargetRefused(f"the host {host} does not resolve") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    if not found:
        raise TargetRefused(f"the host {host} does not resolve")
    return found


async def resolve_target(url: str, *, allow_private: bool) -> Target:
    """Check ``url`` and resolve its host; raises ``TargetRefused`` when it may not be used.
    Every address the name resolves to must pass (a mixed answer is refused)."""
    parts = _split(url)
    scheme = parts.scheme
    host = (parts.hostname or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    addresses = await _resolve(host, port)
    if not allow_private:
        for address in addresses:
            reason = forbidden_reason(address)
            if reason is not None:
                raise TargetRefused(f"{host} resolves to a {reason} address ({address})")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(
        url=url,
        scheme=scheme,
        host=host,
        port=port,
        path=path,
        address=str(addresses[0]),
    )


async def check_url(url: str, *, allow_private: bool, field: str = "url") -> str:
    """Validate an endpoint URL being saved; BAD_USER_INPUT naming ``field`` (with the reason)
    when it is malformed or, unless private addresses are allowed, not public."""
    url = (url or "").strip()
    if not url:
        raise BadUserInput("url is required", field=field)
    try:
        if allow_private:
            _split(url)
        else:
            await resolve_target(url, allow_private=False)
    except TargetRefused as exc:
        raise BadUserInput(f"This URL cannot receive webhooks: {exc}.", field=field) from exc
    return url
