"""Catalog read: ``event(id)`` with its sessions and tiers (cached) through GraphQL vs a bare
Starlette endpoint serving the same bytes — PostgreSQL + Redis, one worker each.

    .venv/bin/python -m bench.catalog_read [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

import httpx
import orjson

from bench.fixtures import bench_env, build_sale, postgres_database, redis_server
from bench.harness import bare_server, boxoffice_server, free_port, load, record

QUERY = """query($id: ID!) { event(id: $id) { id title category city status performers tags
  venue { name city } sessions { id startsAt saleStartsAt queueEnabled
    tiers { id name price { amount currency } capacity available seated limitPerOrder } } } }"""


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
            sale = loop.run_until_complete(build_sale(env, users=0, ga_capacity=500))
            body = orjson.dumps({"query": QUERY, "variables": {"id": sale.event_id}}).decode()
            port = free_port()
            with boxoffice_server(port, env):
                url = f"http://127.0.0.1:{port}/graphql"
                answer = httpx.post(
                    url, content=body, headers={"content-type": "application/json"}
                ).content
                assert b'"errors"' not in answer, answer
                graphql = load(url, body=body, connections=args.connections, seconds=args.seconds)
            body_file = Path(tmp) / "event.json"
            body_file.write_bytes(answer)
            with bare_server("bench.baseline:app", {"BENCH_BODY_FILE": str(body_file)}) as bare_url:
                bare = load(
                    f"{bare_url}/graphql",
                    body=body,
                    connections=args.connections,
                    seconds=args.seconds,
                )
        finally:
            loop.run_until_complete(db_cm.__aexit__(None, None, None))
            loop.close()
    ratio = graphql["rps"] / bare["rps"] if bare["rps"] else 0.0
    record(
        "Catalog read: event(id) with sessions and tiers vs bare endpoint, same bytes",
        f"python -m bench.catalog_read --seconds {args.seconds} --connections {args.connections}",
        [
            ("response size (bytes)", str(len(answer))),
            ("bare Starlette, same bytes (req/s)", f"{bare['rps']:.0f} (p99 {bare['p99_ms']} ms)"),
            (
                "boxoffice event(id) (req/s)",
                f"{graphql['rps']:.0f} (p50 {graphql['p50_ms']} ms, p99 {graphql['p99_ms']} ms)",
            ),
            ("ratio GraphQL / bare", f"{ratio:.1%}"),
            ("errors", f"{graphql['errors']} / {bare['errors']}"),
        ],
        notes="Anonymous event/home answers are cached per process (response_cache: until the next "
        "status boundary or catalog change, at most BOXOFFICE_RESPONSE_CACHE_SECONDS, default 2 s); "
        "tier availability is refilled from the ledger on every hit.",
    )


if __name__ == "__main__":
    main()
