"""Queue subscribers for ``bench.queue_fanout``: one WebSocket per user, each following
``queuePosition``, run as its own process so the clients do not share the server's loop.

    python -m bench.queue_watchers --url ws://127.0.0.1:8000/graphql --event EVENT \
        --tokens tokens.txt --drop 2000

Connects (``--concurrency`` handshakes at a time), waits for every subscriber's first ticket,
prints ``READY <n>``, then records each later update as ``[arrival (epoch s), position]``
until the subscriber's position went down by ``--drop``, ``--seconds`` pass, or a ``STOP``
line (or the end) comes on stdin. Prints one JSON
line: ``{"subscribers": n, "failed": f, "endings": {why: n}, "cpu_seconds": s, "streams": [[first position,
[[t, p], ...]], ...]}`` (``cpu_seconds``: this process's CPU time after READY).
Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.harness import client_ip, run_on_uvloop

POSITION = (
    "subscription($e: ID!) { queuePosition(eventId: $e) { status position ahead "
    "estimatedWaitSeconds } }"
)


async def subscribe(url: str, token: str, event_id: str, ip: str) -> tuple[ClientConnection, int]:
    ws = await connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        max_queue=None,
        additional_headers={"X-Forwarded-For": ip},  # one address per simulated user
        ping_interval=None,  # browsers send no pings; the server's pings are still answered
    )
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await ws.send(json.dumps(init))
    ack = json.loads(await ws.recv())
    if ack.get("type") != "connection_ack":
        raise RuntimeError(f"not acknowledged: {ack}")
    payload = {"query": POSITION, "variables": {"e": event_id}}
    await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
    first = json.loads(await ws.recv())
    if first.get("type") != "next" or first["payload"].get("errors"):
        raise RuntimeError(f"no first ticket: {first}")
    return ws, int(first["payload"]["data"]["queuePosition"]["position"])


def ending(message: dict[str, object]) -> str:
    """How a subscription ended: ``complete``, or an error's codes (``error:SOLD_OUT``)."""
    payload = message.get("payload")
    errors = payload if isinstance(payload, list) else []
    if isinstance(payload, dict):
        errors = payload.get("errors") or []
    codes = sorted(
        {str((e.get("extensions") or {}).get("code", "?")) for e in errors if isinstance(e, dict)}
    )
    return str(message.get("type")) + (":" + ",".join(codes) if codes else "")


async def follow(
    ws: ClientConnection, until: int, deadline: float, out: list[tuple[float, int]]
) -> str:
    """Record the updates; answer why it stopped: ``done`` (down by ``--drop``),
    ``deadline``, ``lost`` (the connection), or how the server ended it (``ending``)."""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "deadline"
        try:
            raw = await asyncio.wait_for(ws.recv(), remaining)
        except TimeoutError:
            return "deadline"
        except ConnectionClosed as exc:
            print(f"connection lost: {exc!r}", file=sys.stderr)
            return "lost"
        arrived = time.time()
        message = json.loads(raw)
        if message.get("type") == "ping":
            await ws.send('{"type":"pong"}')
            continue
        if message.get("type") != "next" or message["payload"].get("errors"):
            return ending(message)
        position = message["payload"]["data"]["queuePosition"]["position"]
        if position is None:
            return "no position"
        out.append((arrived, int(position)))
        if position <= until:
            return "done"


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--event", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--drop", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--first", type=int, default=0, help="index of the first user (its IP)")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("queue_watchers only connects to loopback")
    with open(args.tokens) as handle:
        tokens = [line.strip() for line in handle if line.strip()]
    gate = asyncio.Semaphore(args.concurrency)
    failed = 0

    async def open_one(n: int, token: str) -> tuple[ClientConnection, int] | None:
        nonlocal failed
        async with gate:
            try:
                return await subscribe(args.url, token, args.event, client_ip(args.first + n))
            except Exception as exc:  # counted and reported, the rest go on
                failed += 1
                print(f"subscribe failed: {exc!r}", file=sys.stderr)
                return None

    opened = [
        found for found in await asyncio.gather(*map(open_one, range(len(tokens)), tokens)) if found
    ]
    print(f"READY {len(opened)}", flush=True)
    cpu_ready = time.process_time()
    deadline = time.monotonic() + args.seconds
    streams: list[list[tuple[float, int]]] = [[] for _ in opened]

    async def follow_until_stopped(ws: ClientConnection, first: int, out: list[Any]) -> str:
        try:
            return await follow(ws, first - args.drop, deadline, out)
        except asyncio.CancelledError:
            return "stopped"

    following = [
        asyncio.create_task(follow_until_stopped(ws, first, out))
        for (ws, first), out in zip(opened, streams, strict=True)
    ]

    async def stop_on_stdin() -> None:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        for task in following:
            task.cancel()

    stopper = asyncio.create_task(stop_on_stdin())
    endings = await asyncio.gather(*following)
    stopper.cancel()
    result = {
        "subscribers": len(opened),
        "failed": failed,
        "endings": dict(Counter(endings)),
        "cpu_seconds": time.process_time() - cpu_ready,  # following, after READY
        "streams": [[first, out] for (_ws, first), out in zip(opened, streams, strict=True)],
    }
    print(json.dumps(result), flush=True)
    await asyncio.gather(*(ws.close() for ws, _first in opened), return_exceptions=True)


if __name__ == "__main__":
    run_on_uvloop(main())
