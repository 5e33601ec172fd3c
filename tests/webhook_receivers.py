"""A webhook receiver as an integrator would run one: a small Starlette app that records every
request, answers from a script, and processes each event id once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """Answers the scripted status codes in turn, then ``default``. On a 2xx it processes the
    event unless it already did (deduplication by ``Boxoffice-Event-Id``). With ``gate`` set,
    requests wait for it before answering."""

    def __init__(self, answers: list[int] | None = None, default: int = 200) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.requests: list[Received] = []
        self.processed: dict[str, dict[str, Any]] = {}
        self.gate: asyncio.Event | None = None
        self.body_size = 2
        self.arrived = asyncio.Event()
        self.app = Starlette(routes=[Route("/hook", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(Received(dict(request.headers), body))
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        status = self.answers.pop(0) if self.answers else self.default
        if 200 <= status < 300:
            self.processed.setdefault(request.headers["boxoffice-event-id"], json.loads(body))
            return PlainTextResponse("ok" * (self.body_size // 2), status_code=status)
        return PlainTextResponse(f"nope {status}", status_code=status)


def readme_verifier() -> Callable[[str, str, bytes], bool]:
    """The verification snippet of the README, exactly as an integrator would paste it."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Verifying webhook signatures", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own documentation
    verify: Callable[[str, str, bytes], bool] = namespace["verify_boxoffice_signature"]
    return verify
