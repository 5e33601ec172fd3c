"""A process holding many ``seatAvailability`` subscribers (bench/fanout.py starts it).

    python -m bench.fanout_client URL[,URL...] SESSION_ID COUNT

Prints ``ready`` once every subscriber has its snapshot, then, when stdin closes, one JSON
line: for each seat id seen in an update, every subscriber's receive times (unix seconds).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import websockets

QUERY = "subscription($s: ID!) { seatAvailability(sessionId: $s) { version snapshot compact } }"


async def subscriber(
    url: str,
    session_id: str,
    ready: asyncio.Event,
    counter: list[int],
    total: int,
    seen: dict[str, list[float]],
) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        await ws.recv()
        await ws.send(
            json.dumps(
                {
                    "id": "1",
                    "type": "subscribe",
                    "payload": {"query": QUERY, "variables": {"s": session_id}},
                }
            )
        )
        first = True
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message.get("type") != "next":
                continue
            update = message["payload"]["data"]["seatAvailability"]
            if first:
                first = False
                counter[0] += 1
                if counter[0] == total:
                    ready.set()
                continue
            for seat_id in update["compact"]["ids"]:
                seen.setdefault(seat_id, []).append(now)


async def main() -> None:
    urls = sys.argv[1].split(",")
    session_id, count = sys.argv[2], int(sys.argv[3])
    ready = asyncio.Event()
    counter = [0]
    seen: dict[str, list[float]] = {}
    tasks = []
    for i in range(count):
        tasks.append(
            asyncio.create_task(
                subscriber(urls[i % len(urls)], session_id, ready, counter, count, seen)
            )
        )
        if i % 100 == 99:
            await asyncio.sleep(0.05)  # do not stampede the handshakes
    await asyncio.wait_for(ready.wait(), 120)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for task in tasks:
        task.cancel()
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
