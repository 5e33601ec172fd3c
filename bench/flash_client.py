"""Simulated buyers for ``bench.flash_sale``, in processes of their own (several), so the
clients never share an event loop with a server.

    python -m bench.flash_client --urls http://127.0.0.1:8001,http://127.0.0.1:8002 \
        --event EVENT --session SESSION --tier TIER --tokens tokens.txt --first 0

Each line of ``--tokens`` is one user (user ``--first + n`` of the run: it talks to server
``index % len(urls)`` from the address ``harness.client_ip(index)``, sent as
``X-Forwarded-For``). Every user

1. ``joinQueue`` over HTTP (``bench.http_lite``, a keep-alive connection per user, closed
   after the join), then opens a WebSocket (``graphql-transport-ws``, with ``bench.ws_lite``)
   and subscribes to ``queuePosition``; once every user has its first ticket (or failed to
   get it) the process prints ``READY <n>``;
2. waits for a line on stdin: ``GO <deadline epoch seconds>``; from then on each user
   follows its queue position until ADMITTED (or SOLD_OUT, or the deadline: it gives up);
3. admitted: ``createHold`` with the queue token, ``createOrder``, ``startPayment`` (SANDBOX)
   and the sandbox provider's "payer finished" button, which delivers the signed callback;
   then reads its order back and counts it only when ``PAID``.

At the deadline every user still on the way stops (counted as a timeout at its stage). The
process prints one JSON line, ``{"users": [User as a dict, ...], "cpu_seconds": s}`` (its CPU
time after GO), and exits at once. Loopback only; bounded by the users in the file and the
deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench import http_lite, ws_lite
from bench.harness import client_ip, run_on_uvloop
from boxoffice.gc_tuning import tune_gc

JOIN = (
    "mutation Join($e: ID!, $d: String) { joinQueue(eventId: $e, deviceId: $d) "
    "{ status position asOf } }"
)
POSITION = (
    "subscription($e: ID!) { queuePosition(eventId: $e) { status position ahead queueToken asOf } }"
)
HOLD = "mutation Hold($i: CreateHoldInput!) { createHold(input: $i) { token } }"
ORDER = "mutation Order($i: CreateOrderInput!) { createOrder(input: $i) { id status } }"
PAY = "mutation Pay($o: ID!) { startPayment(orderId: $o, channel: SANDBOX) { paymentNo } }"
STATUS = "query OrderStatus($o: ID!) { order(id: $o) { status } }"
LOST: dict[str, Any] = {"type": "lost"}  # the socket closed


class Refused(Exception):
    """A GraphQL error answer: ``code`` from its extensions."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class User:
    index: int
    token: str
    base: str  # the server's http://host:port
    stage: str = "join"  # where the user is (or stopped): join, subscribe, queue, hold, ...
    outcome: str = ""  # paid, sold_out:<stage>, error:<stage>:<code>, timeout:<stage>, ...
    updates: list[tuple[float, float]] = field(default_factory=list)  # (arrival, asOf)
    admitted_at: float = 0.0
    hold_ms: float = 0.0  # createHold round trip, ok or not
    held_at: float = 0.0
    paid_at: float = 0.0
    admit_arrived: float = 0.0
    hold_sent: float = 0.0


def code_of(answer: dict[str, Any]) -> str | None:
    errors = answer.get("errors")
    if not errors:
        return None
    return str((errors[0].get("extensions") or {}).get("code", "UNKNOWN"))


def epoch_of(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else 0.0


class Buyer:
    def __init__(self, args: argparse.Namespace, user: User) -> None:
        self.args = args
        self.user = user
        self.ip = client_ip(user.index)
        address = urlsplit(user.base)
        self.host, self.port = address.hostname or "127.0.0.1", address.port or 80
        self.http = http_lite.Connection(self.host, self.port)
        self.ws: ws_lite.LiteSocket | None = None
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL request; the ``data`` of the answer, or ``Refused``."""
        response = await self.http.request(
            "POST",
            "/graphql",
            # the operation's name, as Apollo and urql send it (the servers' metrics label)
            orjson.dumps(
                {
                    "query": query,
                    "variables": variables,
                    "operationName": query.split("(", 1)[0].split()[1],
                }
            ),
            {
                "authorization": f"Bearer {self.user.token}",
                "content-type": "application/json",
                "x-forwarded-for": self.ip,
            },
        )
        answer = orjson.loads(response.body)
        code = code_of(answer)
        if code is not None:
            raise Refused(code)
        data: dict[str, Any] = answer["data"]
        return data

    async def enter(self) -> None:
        """Join the line and subscribe to the position (before the sale opens)."""
        user = self.user
        await self.call(JOIN, {"e": self.args.event, "d": f"device-{user.index}"})
        self.http.close()  # the socket carries the wait; the hold opens a connection afresh
        user.stage = "subscribe"
        self.ws = await ws_lite.connect(
            self.host,
            self.port,
            "/graphql",
            self.received,
            subprotocol="graphql-transport-ws",
            headers={"X-Forwarded-For": self.ip},
            timeout=60,
        )
        self.ws.closed.add_done_callback(lambda _: self.inbox.put_nowait(LOST))
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {user.token}"}}
        self.ws.send(orjson.dumps(init))
        ack = await self.inbox.get()
        if ack.get("type") != "connection_ack":
            raise Refused(f"NO_ACK_{ack.get('type')}")
        payload = {"query": POSITION, "variables": {"e": self.args.event}}
        self.ws.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        first = await self.next_ticket()
        if first is None:
            raise Refused("NO_FIRST_TICKET")
        user.stage = "queue"

    def received(self, raw: bytes, arrived: float) -> None:
        """Each message of the socket, as it arrives (no task switch): a WAITING update is
        only recorded; the rest goes to ``inbox`` for the buyer to act on."""
        message = orjson.loads(raw)
        kind = message.get("type")
        if kind == "ping":
            assert self.ws is not None
            self.ws.send(b'{"type":"pong"}')
            return
        if kind == "next" and self.user.stage == "queue":
            ticket = ((message.get("payload") or {}).get("data") or {}).get("queuePosition")
            if ticket:  # pushed after the first ticket: an update
                self.user.updates.append((arrived, epoch_of(ticket.get("asOf"))))
                if ticket.get("status") == "WAITING":
                    return
                self.user.admit_arrived = arrived
        self.inbox.put_nowait(message)

    async def next_ticket(self) -> dict[str, Any] | None:
        """The next ticket the buyer must act on (None when the stream completed); a pushed
        error is raised as ``Refused``."""
        while True:
            message = await self.inbox.get()
            kind = message.get("type")
            if kind == "lost":
                raise ConnectionError("the server closed the socket")
            if kind == "complete":
                return None
            if kind == "error":
                errors = message.get("payload") or [{}]
                raise Refused(str((errors[0].get("extensions") or {}).get("code", "UNKNOWN")))
            if kind != "next":
                continue
            code = code_of(message["payload"])
            if code is not None:
                raise Refused(code)
            ticket: dict[str, Any] = message["payload"]["data"]["queuePosition"]
            return ticket

    async def buy(self) -> None:
        """From the line to a paid order (after GO)."""
        user, args = self.user, self.args
        queue_token = None
        while queue_token is None:
            ticket = await self.next_ticket()
            if ticket is None:
                raise Refused("QUEUE_ENDED_UNADMITTED")
            if ticket["status"] == "ADMITTED":
                queue_token = ticket["queueToken"]
            elif ticket["status"] != "WAITING":
                raise Refused(f"QUEUE_{ticket['status']}")
        user.admitted_at = time.time()
        self.close_socket()
        user.stage = "hold"
        started = time.perf_counter()
        user.hold_sent = time.time()
        try:
            hold = await self.call(
                HOLD,
                {
                    "i": {
                        "sessionId": args.session,
                        "tierId": args.tier,
                        "quantity": 1,
                        "queueToken": queue_token,
                    }
                },
            )
        finally:
            user.hold_ms = (time.perf_counter() - started) * 1000
        user.held_at = time.time()
        user.stage = "order"
        order = await self.call(
            ORDER,
            {
                "i": {
                    "holdToken": hold["createHold"]["token"],
                    "idempotencyKey": f"flash-{user.index}",
                }
            },
        )
        order_id = order["createOrder"]["id"]
        user.stage = "payment"
        payment_no = (await self.call(PAY, {"o": order_id}))["startPayment"]["paymentNo"]
        user.stage = "callback"
        completed = await self.http.request(
            "POST",
            f"/sandbox/payments/{payment_no}/complete",
            b'{"result": "SUCCESS"}',
            {"content-type": "application/json", "x-forwarded-for": self.ip},
        )
        if not orjson.loads(completed.body).get("acknowledged"):
            raise Refused("CALLBACK_NOT_ACKNOWLEDGED")
        user.stage = "paid?"
        status = (await self.call(STATUS, {"o": order_id}))["order"]["status"]
        if status != "PAID":
            raise Refused(f"ORDER_{status}")
        user.paid_at = time.time()
        user.outcome = "paid"

    def close_socket(self) -> None:
        """Close the WebSocket (the wait is over)."""
        if self.ws is not None:
            self.ws.close()
            self.ws = None

    def hang_up(self) -> None:
        """Close the sockets (the user is done)."""
        self.http.close()
        self.close_socket()


def finish(user: User, exc: BaseException) -> None:
    """Record how a user stopped, from the exception that stopped it."""
    if isinstance(exc, Refused):
        kind = "sold_out" if exc.code == "SOLD_OUT" else "error"
        user.outcome = (
            f"sold_out:{user.stage}" if kind == "sold_out" else f"error:{user.stage}:{exc.code}"
        )
    elif isinstance(exc, asyncio.CancelledError | TimeoutError):
        user.outcome = f"timeout:{user.stage}"
    elif isinstance(exc, ConnectionError):
        user.outcome = f"lost:{user.stage}"
    else:
        user.outcome = f"error:{user.stage}:{type(exc).__name__}"


async def report_progress(users: list[User], first: int, every: float = 5.0) -> None:
    """Every ``every`` seconds, where this process's users are (on stderr)."""
    while True:
        await asyncio.sleep(every)
        where = Counter(user.outcome or user.stage for user in users)
        summary = ", ".join(f"{k} {v}" for k, v in where.most_common())
        print(f"[{time.strftime('%H:%M:%S')}] users {first}+: {summary}", file=sys.stderr)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True, help="the servers, comma-separated")
    parser.add_argument("--event", required=True)
    parser.add_argument("--session", required=True)
    parser.add_argument("--tier", required=True)
    parser.add_argument("--tokens", required=True)
    parser.add_argument("--first", type=int, default=0, help="run-wide index of the first user")
    parser.add_argument("--concurrency", type=int, default=64, help="users entering at a time")
    parser.add_argument("--enter-seconds", type=float, default=150.0)
    args = parser.parse_args()
    tune_gc()  # like the servers: thousands of sockets would make each full collection long
    urls = args.urls.split(",")
    if any(urlsplit(u).hostname not in ("127.0.0.1", "localhost", "::1") for u in urls):
        raise SystemExit("flash_client only talks to loopback")
    with open(args.tokens) as handle:
        tokens = [line.strip() for line in handle if line.strip()]
    users = [
        User(index=args.first + n, token=token, base=urls[(args.first + n) % len(urls)])
        for n, token in enumerate(tokens)
    ]
    # every user has its own connection, as every browser does (bench.http_lite)
    buyers = [Buyer(args, user) for user in users]
    gate = asyncio.Semaphore(args.concurrency)
    enter_by = time.monotonic() + args.enter_seconds

    async def enter(buyer: Buyer) -> bool:
        async with gate:
            try:
                await asyncio.wait_for(buyer.enter(), max(0.1, enter_by - time.monotonic()))
                return True
            except Exception as exc:  # counted; the others go on
                finish(buyer.user, exc)
                buyer.hang_up()
                return False

    entered = await asyncio.gather(*(enter(b) for b in buyers))
    print(f"READY {sum(entered)}", flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    deadline = float(line.split()[1])
    cpu_go = time.process_time()

    async def buy(buyer: Buyer) -> None:
        try:
            await buyer.buy()
        except BaseException as exc:
            finish(buyer.user, exc)
            if not isinstance(exc, Exception | asyncio.CancelledError):
                raise
        finally:
            buyer.hang_up()

    tasks = [asyncio.create_task(buy(b)) for b, ok in zip(buyers, entered, strict=True) if ok]
    reporter = asyncio.create_task(report_progress(users, args.first))
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.0, deadline - time.time()))
    reporter.cancel()
    # the users still on the way gave up; answer now rather than after cancelling
    # thousands of requests to a server that may be swamped (that can take minutes)
    for user in users:
        if not user.outcome:
            user.outcome = f"timeout:{user.stage}"
    result = {
        "users": [asdict(user) | {"token": None, "base": None} for user in users],
        "cpu_seconds": time.process_time() - cpu_go,
    }
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    sys.stdout.flush()
    os._exit(0)  # no clean-up: the sockets and requests die with the process


if __name__ == "__main__":
    run_on_uvloop(main())
