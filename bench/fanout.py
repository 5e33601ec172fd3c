"""Subscription fan-out: N ``seatAvailability`` subscribers of one session, spread over one or
two server processes; time from a hold (its HTTP answer) to each subscriber's update, and
server memory per subscriber. Baseline: the same subscribers' round trip on a bare websocket
echo is not meaningful here, so the figure reported is absolute latency (the issue's target:
p99 within 1 s).

    .venv/bin/python -m bench.fanout --subscribers 1000 --servers 1 [--holds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

from bench.fixtures import bench_env, build_sale, postgres_database, redis_server
from bench.harness import boxoffice_server, free_port, record, rss_kib

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token seats { id } } }"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes holding the sockets"
    )
    parser.add_argument("--holds", type=int, default=10)
    args = parser.parse_args()
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        db_cm = postgres_database()
        database_url = loop.run_until_complete(db_cm.__aenter__())
        try:
            env = bench_env(database_url, redis_url, tmp)
            sale = loop.run_until_complete(build_sale(env, users=1, ga_capacity=10, seats=500))
            ports = [free_port() for _ in range(args.servers)]
            servers = [boxoffice_server(p, env) for p in ports]
            processes = [s.__enter__() for s in servers]
            try:
                urls = ",".join(f"ws://127.0.0.1:{p}/graphql" for p in ports)
                base_rss = [rss_kib(p.pid) for p in processes]
                per_client = args.subscribers // args.clients
                clients = [
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "bench.fanout_client",
                            urls,
                            sale.session_id,
                            str(per_client),
                        ],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    for _ in range(args.clients)
                ]
                for client in clients:
                    assert client.stdout is not None
                    assert client.stdout.readline().strip() == "ready"
                time.sleep(1.0)
                loaded_rss = [rss_kib(p.pid) for p in processes]
                sent: dict[str, float] = {}
                seats = httpx.post(
                    f"http://127.0.0.1:{ports[0]}/graphql",
                    json={
                        "query": "query($s: ID!) { sessionAvailability(sessionId: $s) { seats(first: 500) { id } } }",
                        "variables": {"s": sale.session_id},
                    },
                ).json()
                seat_ids = [s["id"] for s in seats["data"]["sessionAvailability"]["seats"]]
                with httpx.Client(timeout=10) as http:
                    for i in range(args.holds):
                        body = {
                            "query": HOLD,
                            "variables": {
                                "i": {"sessionId": sale.session_id, "seatIds": [seat_ids[i]]}
                            },
                        }
                        started = time.time()
                        answer = http.post(
                            f"http://127.0.0.1:{ports[i % len(ports)]}/graphql",
                            json=body,
                            headers={"authorization": f"Bearer {sale.tokens[0]}"},
                        ).json()
                        assert "errors" not in answer, answer
                        sent[seat_ids[i]] = started
                        time.sleep(0.5)
                time.sleep(1.5)
                latencies: list[float] = []
                missing = 0
                for client in clients:
                    out, _ = client.communicate("", timeout=60)
                    seen = json.loads(out.strip().splitlines()[-1])
                    for seat_id, started in sent.items():
                        times = seen.get(seat_id, [])
                        missing += per_client - len(times)
                        latencies.extend(t - started for t in times)
            finally:
                for s in servers:
                    s.__exit__(None, None, None)
        finally:
            loop.run_until_complete(db_cm.__aexit__(None, None, None))
            loop.close()
    latencies.sort()

    def pct(p: float) -> str:
        return (
            f"{latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000:.0f} ms"
            if latencies
            else "-"
        )

    per_subscriber = [
        (after - before) / max(1, args.subscribers // args.servers)
        for before, after in zip(base_rss, loaded_rss, strict=True)
    ]
    record(
        f"Subscription fan-out: {args.subscribers} seatAvailability subscribers on {args.servers} process(es)",
        f"python -m bench.fanout --subscribers {args.subscribers} --servers {args.servers} --clients {args.clients} --holds {args.holds}",
        [
            (
                "updates expected / received",
                f"{args.subscribers * args.holds} / {len(latencies)} (missing {missing})",
            ),
            ("hold answered → subscriber updated, p50", pct(0.50)),
            ("p90", pct(0.90)),
            ("p99", pct(0.99)),
            ("max", pct(1.0)),
            ("mean", f"{statistics.mean(latencies) * 1000:.0f} ms" if latencies else "-"),
            ("server memory per subscriber", ", ".join(f"{kib:.1f} KiB" for kib in per_subscriber)),
        ],
        notes="Updates are merged per ~100 ms per session, so latency includes up to one flush interval. "
        "Subscribers and the load run in separate processes on the same 2 cores.",
    )


if __name__ == "__main__":
    main()
