"""Trivial query: `{ __typename }` through boxoffice vs a bare Starlette endpoint answering the
same bytes, one uvicorn worker each, load from a separate process.

    .venv/bin/python -m bench.trivial_query [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from bench.harness import bare_server, boxoffice_server, free_port, load, record

QUERY = '{"query":"{ __typename }"}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "BOXOFFICE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db",
            "BOXOFFICE_DATA_DIR": tmp,
            "BOXOFFICE_RUN_BACKGROUND_JOBS": "false",
        }
        subprocess.run(
            [sys.executable, "-m", "boxoffice", "migrate"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        port = free_port()
        with boxoffice_server(port, env):
            url = f"http://127.0.0.1:{port}/graphql"
            body = httpx.post(
                url, content=QUERY, headers={"content-type": "application/json"}
            ).content
            graphql = load(url, body=QUERY, connections=args.connections, seconds=args.seconds)
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        with bare_server("bench.baseline:app", {"BENCH_BODY_FILE": str(body_file)}) as bare_url:
            bare = load(
                f"{bare_url}/graphql",
                body=QUERY,
                connections=args.connections,
                seconds=args.seconds,
            )
    ratio = graphql["rps"] / bare["rps"] if bare["rps"] else 0.0
    record(
        "Trivial query vs bare Starlette",
        f"python -m bench.trivial_query --seconds {args.seconds} --connections {args.connections}",
        [
            ("bare Starlette, same bytes (req/s)", f"{bare['rps']:.0f} (p99 {bare['p99_ms']} ms)"),
            (
                "boxoffice `{ __typename }` (req/s)",
                f"{graphql['rps']:.0f} (p99 {graphql['p99_ms']} ms)",
            ),
            ("ratio boxoffice / bare", f"{ratio:.1%}"),
            ("errors", f"{graphql['errors']} / {bare['errors']}"),
        ],
    )


if __name__ == "__main__":
    main()
