"""One webhook HTTP request: POST to a checked address, with a total deadline and a cap on
what is read back.

The connection goes to ``target.address`` (the address the SSRF guard checked), the ``Host``
header and TLS (SNI and certificate verification) use the name from the URL. Redirects are not
followed, proxies from the environment are not used, and the response is read raw (no
decompression) up to ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from boxoffice.services.webhook_targets import Target

USER_AGENT = "boxoffice-webhooks/1"
STORED_BODY_CHARS = 1024


@dataclass(frozen=True)
class HttpOutcome:
    status_code: int | None
    error: str | None
    duration_ms: int
    body: str | None  # the start of the response body, for the deliveries list

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def post(
    target: Target,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout_seconds: float,
    max_bytes: int,
) -> HttpOutcome:
    """Never raises for network trouble: failures come back as an outcome with ``error``."""
    sent = {
        **headers,
        "Host": target.host_header,
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
    }
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    started = time.perf_counter()
    status: int | None = None
    received = bytearray()
    error: str | None = None
    try:
        async with (
            asyncio.timeout(timeout_seconds),
            httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_seconds),
                follow_redirects=False,
                trust_env=False,
            ) as client,
        ):
            request = client.build_request(
                "POST", target.connect_url, content=body, headers=sent, extensions=extensions
            )
            response = await client.send(request, stream=True)
            try:
                status = response.status_code
                async for chunk in response.aiter_raw():
                    received.extend(chunk[: max_bytes - len(received)])
                    if len(received) >= max_bytes:
                        break
            finally:
                await response.aclose()
    except TimeoutError:
        error = f"timed out after {timeout_seconds:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500] if str(exc) else type(exc).__name__
    duration_ms = int((time.perf_counter() - started) * 1000)
    text = bytes(received[: STORED_BODY_CHARS * 4]).decode("utf-8", errors="replace")
    return HttpOutcome(
        status_code=status,
        error=error,
        duration_ms=duration_ms,
        body=text[:STORED_BODY_CHARS] if status is not None else None,
    )
