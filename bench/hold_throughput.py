"""Hold throughput: ``createHold`` through GraphQL vs a bare Starlette endpoint that runs the
same Lua script (same ledger call, no GraphQL, no auth), vs ``redis-benchmark`` EVALSHA of that
script — PostgreSQL + Redis, one uvicorn worker each, load from a separate process.

    .venv/bin/python -m bench.hold_throughput [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import tempfile

import orjson

from bench.fixtures import bench_env, build_sale, postgres_database, redis_server
from bench.harness import bare_server, boxoffice_server, free_port, load, record

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token expiresAt } }"


def redis_benchmark(redis_url: str) -> float | None:
    """EVALSHA of a small hold-shaped script (the DESIGN's raw Redis ceiling)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    script = "redis.call('HINCRBY', KEYS[1], 'held', 1) return redis.call('HGET', KEYS[1], 'held')"
    out = subprocess.run(
        [binary, "-p", port, "-n", "200000", "-c", "50", "-q", "EVAL", script, "1", "bench:{s}:k"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"([\d.]+) requests per second", out.stdout)
    return float(found.group(1)) if found else None


async def prepare(env: dict[str, str]) -> tuple[str, str, str]:
    sale = await build_sale(env, users=1)
    body = orjson.dumps(
        {
            "query": HOLD,
            "variables": {
                "i": {"sessionId": sale.session_id, "tierId": sale.ga_tier_id, "quantity": 1}
            },
        }
    ).decode()
    return body, sale.tokens[0], sale.session_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    with redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        db_cm = postgres_database()
        database_url = loop.run_until_complete(db_cm.__aenter__())
        try:
            env = bench_env(database_url, redis_url, tmp)
            body, token, session_id = loop.run_until_complete(prepare(env))
            port = free_port()
            with boxoffice_server(port, env):
                graphql = load(
                    f"http://127.0.0.1:{port}/graphql",
                    body=body,
                    headers={"authorization": f"Bearer {token}"},
                    connections=args.connections,
                    seconds=args.seconds,
                )
            bare_env = {**env, "BENCH_SESSION_ID": session_id}
            with bare_server("bench.bare_hold:app", bare_env) as bare_url:
                bare = load(
                    f"{bare_url}/hold",
                    body=body,
                    connections=args.connections,
                    seconds=args.seconds,
                )
            raw = redis_benchmark(redis_url)
        finally:
            loop.run_until_complete(db_cm.__aexit__(None, None, None))
            loop.close()
    ratio = graphql["rps"] / bare["rps"] if bare["rps"] else 0.0
    record(
        "Hold throughput (createHold) vs bare Starlette running the same Lua",
        f"python -m bench.hold_throughput --seconds {args.seconds} --connections {args.connections}",
        [
            (
                "redis-benchmark EVALSHA, 50 clients (req/s)",
                f"{raw:.0f}" if raw else "redis-benchmark not installed",
            ),
            (
                "bare Starlette + same Lua (req/s)",
                f"{bare['rps']:.0f} (p50 {bare['p50_ms']} ms, p99 {bare['p99_ms']} ms)",
            ),
            (
                "boxoffice createHold via GraphQL (req/s)",
                f"{graphql['rps']:.0f} (p50 {graphql['p50_ms']} ms, p99 {graphql['p99_ms']} ms)",
            ),
            ("ratio GraphQL / bare", f"{ratio:.1%}"),
            ("errors (GraphQL / bare)", f"{graphql['errors']} / {bare['errors']}"),
        ],
        notes="PostgreSQL + Redis, one uvicorn worker per server; the bare endpoint runs the "
        "ledger's own hold Lua script (same arguments) through plain redis-py, without GraphQL, "
        "auth, revocation, rate limits or the rules; boxoffice makes 2 Redis calls per hold "
        "(revocation markers with the rate limit, then the ledger).",
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
