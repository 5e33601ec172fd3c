"""A hot on-sale: 10,000 real customers queue for 100 tickets through the waiting room, then
hold, order and pay the way a browser would; invariants checked afterwards from the database
and the Redis ledger; a bare hold baseline in the same run.

    .venv/bin/python -m bench.flash_sale [--servers 1] [--users 10000] [--tickets 100] \
        [--rate 50] [--clients 2] [--patience 60] [--dump users.json]

Set-up: a throwaway PostgreSQL database and Redis; an event with one session of one general
admission tier of ``--tickets``, selling through the waiting room at ``--rate`` admissions a
second, its sale an hour away; ``--users`` customers (``fixtures.bulk_customers``).
``--servers`` ``boxoffice serve`` processes (one uvicorn worker each, background jobs off) and
one ``boxoffice worker`` (the admission ticker, the outbox: tickets) share PostgreSQL and Redis.

The run: ``bench.flash_client`` processes (``--clients``) play the users, spread over the
servers, each from its own address (``X-Forwarded-For``): ``joinQueue``, then the
``queuePosition`` subscription over graphql-transport-ws. When all of them wait in the
pre-queue, this process moves the sale's start to two seconds later (``update_session``, as an
organizer would), which is the on-sale moment: the ticker draws the line and admits. Each
admitted user holds one ticket with its queue token, orders, starts a SANDBOX payment and
presses the sandbox's "paid" button (the signed callback), then reads its order back. A user
still on the way ``--patience`` seconds after the sale opened gives up.

Measured: createHold round trip p50/p99 (client side), queue update latency p50/p99 (arrival
− the update's ``asOf``, the tick it reflects), time from the sale's start to the last ticket
held and to the last one paid, the outcome of every user. Then, with the servers stopped, the
same number of hold attempts (at most ``--rate`` at a time: one tick's admissions) against
``bench.bare_hold`` — bare Starlette running the same Lua on a fresh session of the same size.
``--dump`` writes every user's record (its queue updates, admission, hold) for a timeline.

Bounded: ``--users`` ≤ 15,000 sockets, the patience, every wait has a timeout; loopback only.
The servers, the worker, the clients, PostgreSQL and Redis share the machine's cores, so every
latency is an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from bench.fixtures import OPERATOR, bench_env, build_sale, postgres_database, redis_server
from bench.harness import (
    ROOT,
    background,
    bare_server,
    boxoffice_server,
    cpu_seconds,
    free_port,
    load,
    percentile,
    progress,
    record,
    server_latency,
)
from boxoffice.clock import utcnow
from boxoffice.config import Settings
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.services import event_sessions, inventory

MAX_USERS = 15_000
LEAD_SECONDS = 2.0  # from moving the sale's start to the start itself
TICKETS_WAIT_SECONDS = 20.0  # for the worker to issue the paid orders' tickets


async def start_clients(
    args: argparse.Namespace, urls: list[str], sale: Any, tmp: Path
) -> list[asyncio.subprocess.Process]:
    share = math.ceil(len(sale.tokens) / args.clients)
    processes = []
    for n in range(args.clients):
        path = tmp / f"tokens-{n}.txt"
        path.write_text("\n".join(sale.tokens[n * share : (n + 1) * share]))
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.flash_client",
                "--urls",
                ",".join(urls),
                "--event",
                sale.event_id,
                "--session",
                sale.session_id,
                "--tier",
                sale.ga_tier_id,
                "--tokens",
                str(path),
                "--first",
                str(n * share),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 28,  # the result is one long JSON line
            )
        )
    return processes


async def invariants(rt: Runtime, session_id: str, tier_id: str, capacity: int) -> dict[str, Any]:
    """What the database and the Redis ledger say once the sale is over (after the worker
    had time to issue the paid orders' tickets)."""
    sql = {
        "paid_orders": "SELECT count(*) FROM orders WHERE session_id = :s AND status = 'PAID'",
        "paid_units": "SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id "
        "WHERE i.session_id = :s AND o.status = 'PAID' AND i.live",
        "live_units": "SELECT count(*) FROM order_items WHERE session_id = :s AND live",
        "pending_units": "SELECT count(*) FROM order_items i JOIN orders o ON o.id = i.order_id "
        "WHERE i.session_id = :s AND o.status = 'PENDING_PAYMENT' AND i.live",
        "tickets": "SELECT count(*) FROM tickets WHERE session_id = :s AND status = 'VALID'",
        "ticketed_items": "SELECT count(DISTINCT order_item_id) FROM tickets WHERE session_id = :s",
        "ticket_sns": "SELECT count(DISTINCT ticket_sn) FROM tickets WHERE session_id = :s",
        "all_tickets": "SELECT count(*) FROM tickets WHERE session_id = :s",
        "holds_ordered_twice": "SELECT count(*) FROM (SELECT hold_id FROM orders "
        "WHERE session_id = :s GROUP BY hold_id HAVING count(*) > 1) t",
        "users_paid_twice": "SELECT count(*) FROM (SELECT user_id FROM orders "
        "WHERE session_id = :s AND status = 'PAID' GROUP BY user_id HAVING count(*) > 1) t",
    }
    deadline = time.monotonic() + TICKETS_WAIT_SECONDS
    while True:
        found: dict[str, Any] = {}
        async with rt.db.read() as session:
            connection = await session.connection()
            for name, query in sql.items():
                found[name] = (
                    await connection.execute(text(query), {"s": session_id})
                ).scalar_one()
            found["reserved"] = (
                await connection.execute(
                    text("SELECT reserved FROM ticket_tiers WHERE id = :t"), {"t": tier_id}
                )
            ).scalar_one()
        if found["tickets"] >= found["paid_units"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    counts = (await rt.backends.ledger.counts(session_id))[tier_id]
    found["ledger"] = {
        "free": counts.free,
        "held": counts.held,
        "sold": counts.sold,
        "blocked": counts.blocked,
    }
    found["checks"] = {
        f"paid units ≤ {capacity}": found["paid_units"] <= capacity,
        f"tickets ≤ {capacity}": found["all_tickets"] <= capacity,
        "no order item ticketed twice, no ticketSn twice": found["ticketed_items"]
        == found["all_tickets"]
        == found["ticket_sns"],
        "every paid unit has its ticket": found["tickets"] == found["paid_units"],
        "no hold ordered twice": found["holds_ordered_twice"] == 0,
        f"database: live units = reserved ≤ {capacity}": found["live_units"]
        == found["reserved"]
        <= capacity,
        f"ledger: sold + held + free (+ blocked) = {capacity}": counts.sold
        + counts.held
        + counts.free
        + counts.blocked
        == capacity,
        "ledger sold = database paid units": counts.sold == found["paid_units"],
    }
    return found


async def bare_baseline(
    env: dict[str, str], rt: Runtime, attempts: int, burst: int, tickets: int
) -> dict[str, float]:
    """``attempts`` holds (``burst`` at a time) on bare Starlette + the same Lua, against a
    fresh session of ``tickets``."""
    sale = await build_sale(env, users=0, ga_capacity=tickets)
    await inventory.snapshots(  # load its ledger, as the first request would
        db=rt.db,
        ledger=rt.backends.ledger,
        rules_cache=rt.session_rules,
        session_ids=[sale.session_id],
        seats=False,
    )
    body = orjson.dumps(
        {
            "query": "mutation($i: CreateHoldInput!) { createHold(input: $i) { token } }",
            "variables": {
                "i": {"sessionId": sale.session_id, "tierId": sale.ga_tier_id, "quantity": 1}
            },
        }
    ).decode()
    with bare_server(
        "bench.bare_hold:app", {**env, "BENCH_SESSION_ID": sale.session_id}
    ) as bare_url:
        figures = await asyncio.to_thread(
            load,
            f"{bare_url}/hold",
            body=body,
            connections=max(1, min(burst, attempts)),
            seconds=30.0,
            max_requests=attempts,
            warmup=0.0,
        )
    counts = (await rt.backends.ledger.counts(sale.session_id))[sale.ga_tier_id]
    figures["held"] = counts.held
    return figures


async def run(args: argparse.Namespace, redis_url: str, tmp: Path) -> None:
    async with postgres_database() as database_url:
        env = bench_env(database_url, redis_url, str(tmp))
        started = time.monotonic()
        sale = await build_sale(
            env,
            users=args.users,
            ga_capacity=args.tickets,
            queue_admit_per_second=args.rate,
            sale_starts_at=utcnow() + timedelta(hours=1),
        )
        progress(f"event {sale.event_id}: {args.tickets} tickets, {args.users} customers")
        rt = await open_runtime(Settings())
        try:
            await measure(args, env, rt, sale, tmp, started)
        finally:
            await rt.close()


async def measure(
    args: argparse.Namespace,
    env: dict[str, str],
    rt: Runtime,
    sale: Any,
    tmp: Path,
    started: float,
) -> None:
    ports = [free_port() for _ in range(args.servers)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    with contextlib.ExitStack() as stack:
        stack.enter_context(
            background([sys.executable, "-m", "boxoffice", "worker"], env=env, name="worker")
        )
        servers = [
            stack.enter_context(boxoffice_server(port, {**env, "BOXOFFICE_PUBLIC_BASE_URL": url}))
            for port, url in zip(ports, urls, strict=True)
        ]
        progress(f"{args.servers} server(s) and the worker up; {args.clients} client processes")
        clients = await start_clients(args, urls, sale, tmp)
        try:
            entered = 0
            entering = time.monotonic()
            for client in clients:
                assert client.stdout is not None
                line = await asyncio.wait_for(client.stdout.readline(), 240)
                if not line.startswith(b"READY"):
                    raise RuntimeError(f"a client did not get ready: {line!r}")
                entered += int(line.split()[1])
                progress(f"a client process is ready ({entered} users in the pre-queue)")
            entering = time.monotonic() - entering

            sale_start = utcnow() + timedelta(seconds=LEAD_SECONDS)
            await event_sessions.update_session(
                db=rt.db,
                cache=rt.catalog_cache,
                viewer=OPERATOR,
                session_id=sale.session_id,
                sale_starts_at=sale_start,
            )
            opens = sale_start.timestamp()
            deadline = opens + args.patience
            cpu_before = [cpu_seconds(s.pid) for s in servers]
            for client in clients:
                assert client.stdin is not None
                client.stdin.write(f"GO {deadline}\n".encode())
                await client.stdin.drain()
            progress(f"the sale opens at {sale_start:%H:%M:%S.%f}; patience {args.patience} s")
            results = []
            for client in clients:
                assert client.stdout is not None
                try:
                    line = await asyncio.wait_for(
                        client.stdout.readline(), max(5.0, deadline - time.time() + 60)
                    )
                    results.append(orjson.loads(line))
                except (TimeoutError, orjson.JSONDecodeError):
                    progress("a client process gave no result; its users are left out")
            cpu_spent = [cpu_seconds(s.pid) - b for s, b in zip(servers, cpu_before, strict=True)]
            sale_seconds = time.time() - opens
            server_hold = await asyncio.to_thread(server_latency, urls, "Hold")
        finally:
            for client in clients:
                if client.returncode is None:
                    client.kill()
                    await client.wait()
        progress("clients done; checking the invariants")
        checked = await invariants(rt, sale.session_id, sale.ga_tier_id, args.tickets)
    users = [user for result in results for user in result["users"]]
    attempts = sum(1 for user in users if user["hold_ms"] > 0)
    progress(f"bare baseline: {attempts} hold attempts, {args.rate} at a time")
    bare = await bare_baseline(env, rt, max(1, attempts), args.rate, args.tickets)
    if args.dump:
        Path(args.dump).write_bytes(orjson.dumps({"opens": opens, "users": users}))
    report(
        args, users, results, checked, bare, opens, entering, cpu_spent, sale_seconds, server_hold
    )
    total = time.monotonic() - started
    progress(f"whole run {total:.0f} s")


def report(
    args: argparse.Namespace,
    users: list[dict[str, Any]],
    results: list[dict[str, Any]],
    checked: dict[str, Any],
    bare: dict[str, float],
    opens: float,
    entering: float,
    cpu_spent: list[float],
    sale_seconds: float,
    server_hold: dict[str, float],
) -> None:
    outcomes = Counter(user["outcome"] or "unfinished" for user in users)
    admitted = [u for u in users if u["admitted_at"]]
    held = [u for u in users if u["held_at"]]
    ordered = [
        u for u in users if u["outcome"] == "paid" or u["stage"] in ("payment", "callback", "paid?")
    ]
    paid = [u for u in users if u["outcome"] == "paid"]
    holds_ms = [u["hold_ms"] for u in users if u["hold_ms"] > 0]
    ok_holds_ms = [u["hold_ms"] for u in held]
    updates = [arrived - as_of for u in users for arrived, as_of in u["updates"] if as_of > 0]
    ms = 1000.0

    def share(prefix: str) -> str:
        found = {k: v for k, v in outcomes.items() if k.startswith(prefix)}
        return ", ".join(f"{k}: {v:,}" for k, v in sorted(found.items())) or "none"

    def since_opening(times: list[float], last: bool = True) -> str:
        if not times:
            return "-"
        return f"{(max(times) if last else min(times)) - opens:.2f} s"

    sold_out_at = since_opening([u["held_at"] for u in held])
    last_paid = since_opening([u["paid_at"] for u in paid])
    first_admitted = since_opening([u["admitted_at"] for u in admitted], last=False)
    hold_p99 = percentile(holds_ms, 0.99)
    update_p99 = percentile(updates, 0.99)
    ledger = checked["ledger"]
    checks = checked["checks"]
    bare_ratio = (
        f"{percentile(holds_ms, 0.5) / bare['p50_ms']:.1f}× / {hold_p99 / bare['p99_ms']:.1f}×"
        if bare["p50_ms"] and bare["p99_ms"]
        else "n/a"
    )
    rows = [
        (
            "users / entered the pre-queue (joinQueue + subscription) / time to enter them",
            f"{len(users):,} / {len(users) - sum(1 for u in users if u['stage'] in ('join', 'subscribe')):,}"
            f" / {entering:.1f} s",
        ),
        (
            "admitted / held / ordered / paid",
            f"{len(admitted):,} / {len(held):,} / {len(ordered):,} / {len(paid):,}",
        ),
        ("sold-out answers (SOLD_OUT, by stage)", share("sold_out")),
        ("other errors (by stage and code)", share("error")),
        (
            "timeouts (gave up, by stage) / connections lost",
            f"{share('timeout')} / {share('lost')}",
        ),
        (
            "sale start → first admission / last ticket held (sold out) / last paid",
            f"{first_admitted} / {sold_out_at} / {last_paid}",
        ),
        (
            f"createHold round trip p50 / p99 / max ({len(holds_ms)} attempts; target p99 < 100 ms)",
            f"{percentile(holds_ms, 0.5):.0f} / {hold_p99:.0f} / {max(holds_ms, default=math.nan):.0f} ms"
            f" ({'met' if hold_p99 < 100 else 'MISSED'})",
        ),
        (
            "createHold that got a ticket, p50 / p99",
            f"{percentile(ok_holds_ms, 0.5):.0f} / {percentile(ok_holds_ms, 0.99):.0f} ms",
        ),
        (
            "createHold inside the servers (GraphQL execution, from /metrics): mean / p50 / p99 "
            "(histogram bucket bounds)",
            f"{server_hold['mean_ms']:.1f} / ≤ {server_hold['p50_ms']:g} / "
            f"≤ {server_hold['p99_ms']:g} ms ({server_hold['count']:.0f})",
        ),
        (
            "bare Starlette + same Lua, same attempts, p50 / p99 (ratio createHold / bare)",
            f"{bare['p50_ms']:.1f} / {bare['p99_ms']:.1f} ms ({bare_ratio}); "
            f"{bare['held']:.0f} held",
        ),
        (
            f"queue update latency (arrival − asOf) p50 / p99 / max, {len(updates):,} updates "
            "(target p99 < 1 s)",
            f"{percentile(updates, 0.5) * ms:.0f} / {update_p99 * ms:.0f} / "
            f"{max(updates, default=math.nan) * ms:.0f} ms ({'met' if update_p99 < 1 else 'MISSED'})",
        ),
        (
            "database: paid orders / paid units / tickets / live units / tier reserved",
            f"{checked['paid_orders']} / {checked['paid_units']} / {checked['tickets']} / "
            f"{checked['live_units']} / {checked['reserved']}",
        ),
        (
            "Redis ledger: sold / held / free / blocked",
            f"{ledger['sold']} / {ledger['held']} / {ledger['free']} / {ledger['blocked']}",
        ),
        (
            "invariants",
            "; ".join(f"{name}: {'ok' if ok else 'VIOLATED'}" for name, ok in checks.items()),
        ),
        (
            "server CPU during the sale (per server) / client CPU",
            ", ".join(f"{c:.1f} s" for c in cpu_spent)
            + f" over {sale_seconds:.1f} s / {sum(r['cpu_seconds'] for r in results):.1f} s",
        ),
    ]
    record(
        f"Flash sale: {len(users):,} users, {args.tickets} tickets, {args.servers} server(s)",
        f"python -m bench.flash_sale --servers {args.servers} --users {args.users} "
        f"--tickets {args.tickets} --rate {args.rate} --clients {args.clients} "
        f"--patience {args.patience}",
        rows,
        notes=(
            "PostgreSQL + Redis on loopback; one uvicorn worker per server, one `boxoffice "
            "worker` (admission ticker, tickets). Latencies are client-side; the servers, the "
            "worker, the client processes, PostgreSQL and Redis share the machine's cores. "
            "The bare baseline runs alone after the sale (no fan-out competing with it)."
        ),
    )
    if not all(checks.values()):
        raise SystemExit("an invariant was violated")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tickets", type=int, default=100)
    parser.add_argument("--rate", type=int, default=50, help="admissions per second")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds a user waits")
    parser.add_argument("--dump", help="write every user's record (JSON) to this file")
    args = parser.parse_args()
    if not 1 <= args.users <= MAX_USERS:
        raise SystemExit(f"--users must be between 1 and {MAX_USERS}")
    if not 1 <= args.servers <= 4 or not 1 <= args.clients <= 8:
        raise SystemExit("--servers 1..4, --clients 1..8")
    if not 1 <= args.tickets <= 100_000 or not 1 <= args.rate <= 1000:
        raise SystemExit("--tickets 1..100000, --rate 1..1000")
    if not 1 <= args.patience <= 120:
        raise SystemExit("--patience 1..120 s")
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, redis_url, Path(tmp)))


if __name__ == "__main__":
    main()
