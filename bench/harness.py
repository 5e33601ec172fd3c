"""Benchmark plumbing: start servers as separate processes, drive them with ``bench.loadgen``
from another process, and append results to ``bench/RESULTS.md``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "RESULTS.md"
T = TypeVar("T")


def run_on_uvloop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on uvloop when it is installed (uvicorn[standard] brings it, and
    the servers run on it), so load generators are not slower than what they measure."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(main)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank percentile (``p`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def client_ip(n: int) -> str:
    """The ``n``-th simulated user's address (10.0.0.0/8), sent as ``X-Forwarded-For``:
    uvicorn trusts the loopback proxy (``proxy_headers``), so the server sees each simulated
    user at its own address and per-IP limits (120 joins a minute) apply per user as they
    would in production."""
    if not 0 <= n < 1 << 24:
        raise ValueError("10.0.0.0/8 has 2**24 addresses")
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def server_latency(urls: list[str], operation: str) -> dict[str, float]:
    """An operation's server-side GraphQL time (``boxoffice_graphql_request_duration_seconds``
    from each server's ``/metrics``, summed): count, mean, and p50/p99 as the upper bound of
    the histogram bucket they fall in (ms). Read with the servers still up."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    prefix = "boxoffice_graphql_request_duration_seconds"
    label = f'operation="{operation}"'
    for url in urls:
        for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
            if label not in line or line.startswith("#"):
                continue
            name, value = line.rsplit(" ", 1)
            if name.startswith(prefix + "_bucket"):
                bound = name.split('le="', 1)[1].split('"', 1)[0]
                key = math.inf if bound == "+Inf" else float(bound)
                buckets[key] = buckets.get(key, 0.0) + float(value)
            elif name.startswith(prefix + "_sum"):
                total += float(value)
            elif name.startswith(prefix + "_count"):
                count += float(value)

    def bound_of(p: float) -> float:
        for bound in sorted(buckets):  # cumulative counts
            if buckets[bound] >= p * count:
                return bound * 1000
        return math.nan

    return {
        "count": count,
        "mean_ms": total / count * 1000 if count else math.nan,
        "p50_ms": bound_of(0.5),
        "p99_ms": bound_of(0.99),
    }


@contextlib.contextmanager
def server(
    args: list[str], *, port: int, env: dict[str, str] | None = None, ready_path: str = "/healthz"
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` (a server listening on ``port``) until the block ends.

    Its stderr goes to a file, never to an unread pipe: a server that logs more than a pipe
    holds (64 KiB) would block on its next log line, event loop and all. What it logged is
    summed up on our stderr when it stops."""
    with background(args, env=env, name=f"server :{port}") as process:
        wait_ready(f"http://127.0.0.1:{port}{ready_path}")
        yield process


@contextlib.contextmanager
def bare_server(app: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """A bare baseline (``module:attribute``, e.g. ``bench.baseline:app``) under uvicorn on a
    free port, until the block ends; yields its base URL."""
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    with server(args, port=port, env=env):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def background(
    args: list[str], *, env: dict[str, str] | None = None, name: str = "process"
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` until the block ends; its stderr to a file, summed up when it stops."""
    log = tempfile.NamedTemporaryFile(prefix="bench-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=ROOT,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        report_log(Path(log.name), name)


def report_log(path: Path, name: str) -> None:
    """Sum up what a server logged (one line per distinct message: how many, first and last
    time, the exception's last line) on our stderr; remove the file."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    finally:
        path.unlink(missing_ok=True)
    if not lines:
        return
    seen: dict[tuple[str, str], list[str]] = {}  # (level, message) -> [count, first, last, exc]
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"msg": line[:200]}
        if not isinstance(entry, dict):
            entry = {"msg": line[:200]}
        key = (str(entry.get("level", "-")), f"{entry.get('logger', '-')}: {entry.get('msg')}")
        ts = str(entry.get("ts", ""))[11:23]
        trace = str(entry.get("exc") or "").strip().splitlines()
        found = seen.setdefault(key, ["0", ts, ts, trace[-1][:200] if trace else ""])
        found[0], found[2] = str(int(found[0]) + 1), ts
    print(f"--- {name} logged {len(lines)} lines:", file=sys.stderr)
    for (level, message), (count, first, last, exc) in seen.items():
        print(f"    {count} × {level} {message[:160]} ({first}–{last}) {exc}", file=sys.stderr)


def boxoffice_server(
    port: int, env: dict[str, str], workers: int = 1
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return server(
        [
            sys.executable,
            "-m",
            "boxoffice",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        port=port,
        env={"BOXOFFICE_LOG_LEVEL": "WARNING", **env},
    )


def load(
    url: str,
    *,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    connections: int = 32,
    seconds: float = 5.0,
    max_requests: int | None = None,
    warmup: float | None = None,
) -> dict[str, float]:
    """Drive ``url`` from a separate process; return the loadgen's figures."""
    args = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--url",
        url,
        "--connections",
        str(connections),
        "--seconds",
        str(seconds),
    ]
    if max_requests is not None:
        args += ["--max-requests", str(max_requests)]
    if warmup is not None:
        args += ["--warmup", str(warmup)]
    if body is not None:
        args += ["--body", body]
    for name, value in (headers or {}).items():
        args += ["--header", f"{name}: {value}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpus = os.cpu_count()
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = platform.processor() or "unknown cpu"
    mem = ""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        kb = int(
            next(
                line
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ).split()[1]
        )
        mem = f", {kb / 1024 / 1024:.0f} GiB"
    return f"{cpus} cores ({model}){mem}, Python {platform.python_version()}"


def record(title: str, command: str, rows: list[tuple[str, str]], notes: str = "") -> None:
    """Append a dated section to bench/RESULTS.md and print it."""
    lines = [
        f"\n## {title} — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}\n",
        f"Machine: {machine()}  ",
        f"Command: `{command}`\n",
        "| measure | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEvery run appends a section; newest last.\n")
    with RESULTS.open("a") as handle:
        handle.write(text)
    print(text)
