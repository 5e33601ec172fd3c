"""Paid orders per second, end to end on PostgreSQL + Redis: hold → createOrder →
startPayment → the sandbox company's signed callback → PAID, by concurrent customers driven
from a separate process. The baseline, in the same run and from the same driver: the same six
requests a flow makes (same bodies, same concurrency, same seconds) against bare Starlette
answering fixed bytes (``bench.baseline``), so the ratio shows what the flow costs beyond
transport and the driver.

    .venv/bin/python -m bench.paid_orders [--seconds 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.fixtures import bench_env, build_sale, postgres_database, redis_server
from bench.harness import bare_server, boxoffice_server, free_port, record

HOLD = "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }"
ORDER = "mutation($i: CreateOrderInput!) { createOrder(input: $i) { id status } }"
PAY = "mutation($o: ID!) { startPayment(orderId: $o, channel: SANDBOX) { paymentNo } }"
STATUS = "query($o: ID!) { order(id: $o) { status } }"


async def drive(
    url: str,
    session_id: str,
    tier_id: str,
    tokens: list[str],
    seconds: float,
    concurrency: int,
    *,
    bare: bool = False,
) -> dict[str, float]:
    """Customers paying orders (or, ``bare``, making the same six requests of a fixed-bytes
    server); flows completed per second."""
    done = 0
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def customer(client: httpx.AsyncClient, token: str) -> None:
        nonlocal done
        headers = {"authorization": f"Bearer {token}"}
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            started = time.perf_counter()
            hold = (
                await client.post(
                    "/graphql",
                    json={
                        "query": HOLD,
                        "variables": {
                            "i": {"sessionId": session_id, "tierId": tier_id, "quantity": 1}
                        },
                    },
                    headers=headers,
                )
            ).json()
            order = (
                await client.post(
                    "/graphql",
                    json={
                        "query": ORDER,
                        "variables": {
                            "i": {
                                "holdToken": hold["data"]["createHold"]["token"],
                                "idempotencyKey": f"{token[-12:]}-{n}",
                            }
                        },
                    },
                    headers=headers,
                )
            ).json()
            order_id = order["data"]["createOrder"]["id"]
            pay = (
                await client.post(
                    "/graphql", json={"query": PAY, "variables": {"o": order_id}}, headers=headers
                )
            ).json()
            payment_no = pay["data"]["startPayment"]["paymentNo"]
            completed = await client.post(
                f"/sandbox/payments/{payment_no}/complete", json={"result": "SUCCESS"}
            )
            assert completed.json()["acknowledged"], completed.text
            status = (
                await client.post(
                    "/graphql",
                    json={"query": STATUS, "variables": {"o": order_id}},
                    headers=headers,
                )
            ).json()
            assert status["data"]["order"]["status"] == "PAID", status
            done += 1
            latencies.append(time.perf_counter() - started)

    async def bare_customer(client: httpx.AsyncClient, token: str) -> None:
        nonlocal done
        headers = {"authorization": f"Bearer {token}"}
        hold = {
            "query": HOLD,
            "variables": {"i": {"sessionId": session_id, "tierId": tier_id, "quantity": 1}},
        }
        order = {"query": ORDER, "variables": {"i": {"holdToken": "x", "idempotencyKey": "k"}}}
        pay = {"query": PAY, "variables": {"o": "o"}}
        status = {"query": STATUS, "variables": {"o": "o"}}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            for body in (hold, order, pay, {"result": "SUCCESS"}, {}, status):
                answer = await client.post("/graphql", json=body, headers=headers)
                answer.json()
            done += 1
            latencies.append(time.perf_counter() - started)

    one = bare_customer if bare else customer
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency * 2)
    ) as client:
        await asyncio.gather(*(one(client, tokens[i]) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "paid": done,
        "seconds": elapsed,
        "per_second": done / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000 if latencies else 0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--driver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.driver:
        url, session_id, tier_id, tokens = rest[0], rest[1], rest[2], rest[3].split(",")
        figures = drive(
            url, session_id, tier_id, tokens, args.seconds, args.concurrency, bare=args.bare
        )
        print(json.dumps(asyncio.run(figures)))
        return
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        db_cm = postgres_database()
        database_url = loop.run_until_complete(db_cm.__aenter__())
        try:
            env = bench_env(database_url, redis_url, tmp)
            sale = loop.run_until_complete(
                build_sale(env, users=args.concurrency, ga_capacity=1_000_000)
            )
            port = free_port()
            env = {**env, "BOXOFFICE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}

            def driver(url: str, *extra: str) -> dict[str, float]:
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.paid_orders",
                        "--driver",
                        *extra,
                        "--seconds",
                        str(args.seconds),
                        "--concurrency",
                        str(args.concurrency),
                        url,
                        sale.session_id,
                        sale.ga_tier_id,
                        ",".join(sale.tokens),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
                return figures

            with boxoffice_server(port, env):
                result = driver(f"http://127.0.0.1:{port}")
            body_file = Path(tmp) / "bare.json"
            body_file.write_bytes(b'{"data":{"createHold":{"token":"x"}}}')
            with bare_server("bench.baseline:app", {"BENCH_BODY_FILE": str(body_file)}) as bare_url:
                bare = driver(bare_url, "--bare")
        finally:
            loop.run_until_complete(db_cm.__aexit__(None, None, None))
            loop.close()
    record(
        "Paid orders per second, end to end (PostgreSQL + Redis, one worker)",
        f"python -m bench.paid_orders --seconds {args.seconds} --concurrency {args.concurrency}",
        [
            ("paid orders", str(result["paid"])),
            ("paid orders per second", f"{result['per_second']:.1f}"),
            (
                "bare Starlette, the same six requests per flow (flows per second)",
                f"{bare['per_second']:.1f} (flow p50 {bare['p50_ms']:.0f} ms)",
            ),
            ("ratio paid orders / bare flows", f"{result['per_second'] / bare['per_second']:.1%}"),
            (
                "one customer's whole flow, p50 / p99",
                f"{result['p50_ms']:.0f} ms / {result['p99_ms']:.0f} ms",
            ),
        ],
        notes="Each flow is five HTTP requests (hold, order, startPayment, the sandbox 'payer finished' "
        "button, which delivers the signed callback to /payments/sandbox/notify over HTTP, and a status read) "
        "plus the callback itself; every order is verified PAID.",
    )


if __name__ == "__main__":
    main()
