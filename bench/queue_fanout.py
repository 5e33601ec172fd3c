"""Queue fan-out: how many ``queuePosition`` subscribers one boxoffice process holds, and how
long after an admission tick the last of them hears its new position.

    .venv/bin/python -m bench.queue_fanout [--subscribers 5000] [--ticks 20] [--interval 1]

One ``boxoffice serve`` process (one uvicorn worker, SQLite and a private Redis on loopback,
background jobs off) holds every WebSocket. This process seeds the event and its line and
runs the admission ticker, as ``boxoffice worker`` would: each tick admits ``--rate`` entries
ahead of the subscribers and publishes ONE broadcast, and every subscriber's position goes
down by ``--rate``. ``bench.queue_watchers`` processes (``--loaders``) hold the client side of
the sockets and stamp each update on arrival. Positions near the front hear every tick, the
rest of the line every ``FAR_REFRESH_SECONDS`` (``services.waiting_room``), so an update is
matched to the tick it reflects (from how far the position moved). Measured per tick: from
the tick's start to the last update reflecting it; per update: from its tick's start to its
arrival; the server's RSS before and after the subscribers came; its CPU time over the ticks.

Server, clients and ticker share the machine's cores, so the latencies are upper bounds.
Bounded: ``--subscribers`` sockets (at most 15,000: file descriptors), ``--ticks`` ticks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from bench.fixtures import bulk_customers, customer_tokens, redis_server, stage_sale
from bench.harness import (
    ROOT,
    boxoffice_server,
    cpu_seconds,
    free_port,
    percentile,
    progress,
    record,
    rss_kib,
)
from boxoffice.config import Settings
from boxoffice.jobs import queue_ticker
from boxoffice.runtime import Runtime, open_runtime
from boxoffice.services import waiting_room

MAX_SUBSCRIBERS = 15_000
GRACE_SECONDS = 2.0  # after the last tick, for its updates to arrive
JWT_SECRET = "bench-secret-" + "q" * 40


@contextlib.asynccontextmanager
async def loaders(
    url: str, event_id: str, token_files: list[Path], drop: int, seconds: float, share: int
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.queue_watchers",
            "--url",
            url,
            "--event",
            event_id,
            "--tokens",
            str(path),
            "--drop",
            str(drop),
            "--seconds",
            str(seconds),
            "--first",
            str(n * share),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,  # STOP: the ticks are over
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # the result is one long JSON line
        )
        for n, path in enumerate(token_files)
    ]
    try:
        yield processes
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()


async def run(args: argparse.Namespace, tmp: Path) -> None:
    with redis_server() as redis_url:
        env = {
            "BOXOFFICE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "BOXOFFICE_DATA_DIR": str(tmp),
            "BOXOFFICE_REDIS_URL": redis_url,
            "BOXOFFICE_JWT_SECRET": JWT_SECRET,
            "BOXOFFICE_RUN_BACKGROUND_JOBS": "false",
        }
        subprocess.run(
            [sys.executable, "-m", "boxoffice", "migrate"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        settings = Settings(
            database_url=env["BOXOFFICE_DATABASE_URL"],
            data_dir=tmp,
            redis_url=redis_url,
            jwt_secret=JWT_SECRET,
            run_background_jobs=False,
            queue_tick_seconds=args.interval,  # the ticker's credit per tick: rate × interval
        )
        rt = await open_runtime(settings)
        try:
            await measure(args, tmp, env, rt)
        finally:
            await rt.close()


async def measure(args: argparse.Namespace, tmp: Path, env: dict[str, str], rt: Runtime) -> None:
    # a published event with one queue-enabled session on sale, admitting --rate a second
    event_id = (
        await stage_sale(rt, users=0, ga_capacity=100_000, queue_admit_per_second=args.rate)
    ).event_id
    ticker, _catalog = queue_ticker(rt)
    await ticker.tick()  # the sale has started: the line opens
    room = rt.backends.waiting_room
    for i in range(args.rate * (args.ticks + 1)):  # those admitted while the subscribers watch
        await room.join(event_id, f"ahead-{i:06d}", now=time.time())
    progress(f"event {event_id} seeded, {args.rate * (args.ticks + 1)} ahead in line")
    # real accounts: the server refuses tokens of users it does not know
    watchers = await bulk_customers(rt, args.subscribers)
    for user_id in watchers:
        await room.join(event_id, user_id, now=time.time())
    tokens = await customer_tokens(rt, watchers)
    files = []
    share = math.ceil(len(tokens) / args.loaders)
    for n in range(args.loaders):
        path = tmp / f"tokens-{n}.txt"
        path.write_text("\n".join(tokens[n * share : (n + 1) * share]))
        files.append(path)

    port = free_port()
    with boxoffice_server(port, env) as server:
        idle_rss = rss_kib(server.pid)
        progress(f"server {server.pid} up ({idle_rss // 1024} MiB); subscribing")
        url = f"ws://127.0.0.1:{port}/graphql"
        horizon = 60 + args.subscribers / 50 + args.ticks * args.interval * 3
        drop = args.rate * args.ticks
        async with loaders(url, event_id, files, drop, horizon, share) as processes:
            started = time.monotonic()
            held = 0
            for process in processes:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), horizon)
                held += int(line.decode().split()[1])
                progress(f"a client process is ready ({held} subscribed so far)")
            connect_seconds = time.monotonic() - started
            await asyncio.sleep(2)
            held_rss = rss_kib(server.pid)
            cpu_before = cpu_seconds(server.pid)
            load_before = Path("/proc/loadavg").read_text().split()[0]
            tick_starts: list[float] = []
            tick_spans: list[float] = []
            progress(f"ticking {args.ticks} times")
            for _ in range(args.ticks):
                began = time.time()
                tick_starts.append(began)
                await ticker.tick()
                tick_spans.append(time.time() - began)
                await asyncio.sleep(max(0.0, args.interval - (time.time() - began)))
            await asyncio.sleep(GRACE_SECONDS)  # the last tick's updates arrive
            cpu_spent = cpu_seconds(server.pid) - cpu_before
            load_after = Path("/proc/loadavg").read_text().split()[0]
            results = []
            for process in processes:
                assert process.stdin is not None
                process.stdin.write(b"STOP\n")
                await process.stdin.drain()
            for process in processes:
                assert process.stdout is not None
                line = await asyncio.wait_for(process.stdout.readline(), horizon)
                results.append(orjson.loads(line))
            # the clients report their own CPU: they may exit before the last tick ends
            clients_spent = sum(result["cpu_seconds"] for result in results)

    streams = [stream for result in results for stream in result["streams"]]
    failed = sum(result["failed"] for result in results)
    endings: Counter[str] = Counter()
    for result in results:
        endings.update(result["endings"])
    sent = sum(len(updates) for _first, updates in streams)
    # each update says how far the line moved since the subscriber's first ticket, so which
    # tick it reflects: its latency is from that tick's start (an update of a far subscriber,
    # told every FAR_REFRESH_SECONDS, reflects the tick it came with, not the ones it skipped)
    by_tick: list[list[float]] = [[] for _ in range(args.ticks)]
    for first, updates in streams:
        for arrived, position in updates:
            k = round((first - position) / args.rate)
            if 1 <= k <= args.ticks:
                by_tick[k - 1].append(arrived - tick_starts[k - 1])
    per_update = [latency for latencies in by_tick for latency in latencies]
    last_per_tick = [max(latencies, default=math.nan) for latencies in by_tick]
    heard_any = sum(1 for _first, updates in streams if updates)
    cpu_per_update_us = cpu_spent / max(1, sent) * 1e6
    ms = 1000.0
    record(
        f"Queue fan-out, {held:,} queuePosition subscribers on one process",
        f"python -m bench.queue_fanout --subscribers {args.subscribers} --ticks {args.ticks} "
        f"--interval {args.interval} --rate {args.rate} --loaders {args.loaders}",
        [
            (
                "subscribers held by one process",
                f"{held:,} ({failed} failed to subscribe)",
            ),
            (
                "how the subscribers stopped following",
                ", ".join(f"{why}: {n:,}" for why, n in endings.most_common()),
            ),
            (
                "subscribers that heard at least one update / updates sent per tick "
                f"(positions ≤ rate × {waiting_room.NEAR_SECONDS} every tick, the rest every "
                f"{waiting_room.FAR_REFRESH_SECONDS:g} s)",
                f"{heard_any:,} of {held:,} / {sent / args.ticks:,.0f}",
            ),
            ("time to connect and subscribe them all", f"{connect_seconds:.1f} s"),
            (
                "server RSS idle → holding them",
                f"{idle_rss / 1024:.0f} MiB → {held_rss / 1024:.0f} MiB "
                f"({(held_rss - idle_rss) / max(1, held):.0f} KiB per subscriber)",
            ),
            (
                f"tick → the last update reflecting it, p50 / p99 / max ({args.ticks} ticks)",
                f"{percentile(last_per_tick, 0.5) * ms:.0f} / "
                f"{percentile(last_per_tick, 0.99) * ms:.0f} / {max(last_per_tick) * ms:.0f} ms",
            ),
            (
                "tick → each update reflecting it, p50 / p99",
                f"{percentile(per_update, 0.5) * ms:.0f} / "
                f"{percentile(per_update, 0.99) * ms:.0f} ms",
            ),
            (
                "the ticker's own tick (catalog, admit, publish), p50",
                f"{percentile(tick_spans, 0.5) * ms:.1f} ms",
            ),
            (
                "server CPU per subscriber update",
                f"{cpu_per_update_us:.0f} µs ({cpu_spent:.1f} s for {sent:,} updates)",
            ),
            (
                "client processes' CPU per update received",
                f"{clients_spent / max(1, sent) * 1e6:.0f} µs",
            ),
            ("machine load average before / after the ticks", f"{load_before} / {load_after}"),
            (
                "subscribers one core can update within a 1 s tick (from the CPU figure)",
                f"≈ {1e6 / cpu_per_update_us:,.0f}" if cpu_per_update_us else "n/a",
            ),
        ],
        notes=(
            "One broadcast per tick on Redis; the server turns it into each subscriber's "
            "position in memory (no Redis or database call per subscriber), waking only the "
            "subscribers the tick has news for. Server CPU is counted from the first tick to "
            f"{GRACE_SECONDS:g} s after the last. The server, the "
            f"{args.loaders} client processes and the ticker share the machine's cores."
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)  # the production tick
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--loaders", type=int, default=2)
    args = parser.parse_args()
    if not 1 <= args.subscribers <= MAX_SUBSCRIBERS:
        raise SystemExit(f"--subscribers must be between 1 and {MAX_SUBSCRIBERS}")
    if not 1 <= args.ticks <= 100:
        raise SystemExit("--ticks must be between 1 and 100")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
