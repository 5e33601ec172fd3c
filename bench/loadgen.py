"""A small, fast HTTP/1.1 load generator (keep-alive, pre-encoded requests, asyncio streams).

Run as its own process so the load does not share the server's event loop:

    python -m bench.loadgen --url http://127.0.0.1:8000/graphql --body '{"query":"{__typename}"}' \
        --connections 32 --seconds 5

Prints one JSON line: requests, errors, seconds, rps, p50/p90/p99 latency in ms. Bounded by
``--seconds`` and ``--max-requests``; loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

from bench.harness import run_on_uvloop


def build_request(url: str, body: bytes | None, headers: dict[str, str]) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("loadgen only sends traffic to loopback")
    method = "POST" if body is not None else "GET"
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: keep-alive"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    return parts.hostname or "127.0.0.1", parts.port or 80, raw


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def worker(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    budget: list[int],
    out: list[float],
    errors: list[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            out.append(time.perf_counter() - started)
            if status >= 400:
                errors[0] += 1
    finally:
        writer.close()


async def run(args: argparse.Namespace) -> dict[str, float]:
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = args.body.encode() if args.body is not None else None
    host, port, request = build_request(args.url, body, headers)
    latencies: list[float] = []
    errors = [0]
    budget = [args.max_requests]
    # warm-up
    warm_deadline = time.perf_counter() + args.warmup
    await asyncio.gather(
        *(
            worker(host, port, request, warm_deadline, [10**9], [], [0])
            for _ in range(args.connections)
        )
    )
    started = time.perf_counter()
    deadline = started + args.seconds
    await asyncio.gather(
        *(
            worker(host, port, request, deadline, budget, latencies, errors)
            for _ in range(args.connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000, 3)
            if latencies
            else 0.0
        )

    return {
        "requests": len(latencies),
        "errors": errors[0],
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", default=None)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=2_000_000)
    args = parser.parse_args()
    print(json.dumps(run_on_uvloop(run(args))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
