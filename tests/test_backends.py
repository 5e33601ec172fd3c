"""One conformance suite for every port, run against the memory and the Redis adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from boxoffice import gc_tuning
from boxoffice.backends import Backends, open_backends
from boxoffice.backends.broker import FANOUT_SLICE, RESYNC, URGENT, Broker, Wants
from tests.services import RedisServer


@pytest.fixture(params=["memory", "redis"])
def backends_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "memory":
        return None
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def backends(backends_url: str | None) -> AsyncIterator[Backends]:
    opened = await open_backends(backends_url)
    if opened.redis is not None:
        await opened.redis.flushdb()
    yield opened
    await opened.close()


async def test_rate_limiter_counts_a_fixed_window(backends: Backends):
    limiter = backends.rate_limiter
    decisions = [await limiter.hit("k", limit=3, window_seconds=0.5) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert 0 < decisions[-1].retry_after <= 0.5
    await asyncio.sleep(0.6)
    assert (await limiter.hit("k", limit=3, window_seconds=0.5)).allowed
    await limiter.reset("k")
    assert (await limiter.hit("k", limit=1, window_seconds=10)).count == 1


async def test_rate_limiter_is_atomic_under_concurrency(backends: Backends):
    decisions = await asyncio.gather(
        *(backends.rate_limiter.hit("burst", limit=10, window_seconds=5) for _ in range(100))
    )
    assert sum(d.allowed for d in decisions) == 10


async def test_code_store_values_expire(backends: Backends):
    codes = backends.codes
    await codes.put("a", "1", ttl_seconds=0.3)
    assert await codes.get("a") == "1"
    assert await codes.get_many(["a", "missing"]) == ["1", None]
    await asyncio.sleep(0.4)
    assert await codes.get("a") is None


async def test_code_store_take_is_one_time(backends: Backends):
    await backends.codes.put("otp", "123456", ttl_seconds=10)
    taken = await asyncio.gather(*(backends.codes.take("otp") for _ in range(20)))
    assert taken.count("123456") == 1
    assert await backends.codes.get("otp") is None


async def test_code_store_put_if_absent_and_incr(backends: Backends):
    codes = backends.codes
    results = await asyncio.gather(
        *(codes.put_if_absent("once", "x", ttl_seconds=5) for _ in range(10))
    )
    assert results.count(True) == 1
    counts = await asyncio.gather(*(codes.incr("n", ttl_seconds=5) for _ in range(25)))
    assert sorted(counts) == list(range(1, 26))
    await codes.delete("n")
    assert await codes.incr("n", ttl_seconds=5) == 1


async def test_code_store_put_if_absent_soon_is_sent_before_it_is_awaited(backends: Backends):
    # given several "soon" stores of one key, all sent before any is awaited
    codes = backends.codes
    sent = [codes.put_if_absent_soon("soon", f"v{i}", ttl_seconds=5) for i in range(10)]
    # then the first one sent stored it, whatever order they are awaited in
    answers = [await answer for answer in reversed(sent)]
    assert answers == [False] * 9 + [True]
    assert await codes.get("soon") == "v0"
    # and against a key already there, it stores nothing
    assert await codes.put_if_absent_soon("soon", "late", ttl_seconds=5) is False
    assert await codes.get("soon") == "v0"


async def test_leases_have_one_holder(backends: Backends):
    leases = backends.leases
    got = await asyncio.gather(*(leases.acquire("job", f"p{i}", ttl_seconds=5) for i in range(10)))
    assert got.count(True) == 1
    holder = await leases.holder("job")
    assert holder is not None
    assert await leases.acquire("job", holder, ttl_seconds=5)  # renewal by the holder
    await leases.release("job", "someone-else")
    assert await leases.holder("job") == holder
    await leases.release("job", holder)
    assert await leases.acquire("job", "next", ttl_seconds=0.2)
    await asyncio.sleep(0.3)
    assert await leases.acquire("job", "after-expiry", ttl_seconds=5)


async def test_broker_fans_out_in_order(backends: Backends):
    broker = backends.broker
    received: dict[int, list[str]] = {0: [], 1: []}
    ready = asyncio.Event()
    subscribed = 0

    async def listen(n: int) -> None:
        nonlocal subscribed
        async with broker.subscribe("ch") as messages:
            subscribed += 1
            if subscribed == 2:
                ready.set()
            async for message in messages:
                received[n].append(message)
                if len(received[n]) == 50:
                    return

    tasks = [asyncio.create_task(listen(n)) for n in (0, 1)]
    await asyncio.wait_for(ready.wait(), 5)
    await asyncio.sleep(0.05)
    for i in range(50):
        await broker.publish("ch", str(i))
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert received[0] == received[1] == [str(i) for i in range(50)]
    assert broker.healthy


async def test_broker_survives_a_redis_restart(redis_server: RedisServer):
    # given a subscriber on a private Redis
    server = RedisServer()
    await server.start()
    try:
        backends = await open_backends(server.url)
        try:
            async with backends.broker.subscribe("seats") as messages:
                iterator = messages.__aiter__()
                await asyncio.sleep(0.1)
                await backends.broker.publish("seats", "before")
                assert await asyncio.wait_for(iterator.__anext__(), 5) == "before"
                # when Redis dies and comes back
                await server.restart()
                # then the subscriber learns it must resync, and messages flow again
                assert await asyncio.wait_for(iterator.__anext__(), 15) == RESYNC
                assert backends.broker.healthy
                await backends.broker.publish("seats", "after")
                assert await asyncio.wait_for(iterator.__anext__(), 5) == "after"
        finally:
            await backends.close()
    finally:
        server.stop()


async def test_a_latest_only_subscriber_that_fell_behind_gets_the_newest(backends: Backends):
    # given a latest-only and an ordinary subscriber that do not read for a while
    broker = backends.broker
    async with (
        broker.subscribe("state", latest_only=True) as latest,
        broker.subscribe("state") as every,
    ):
        newest, ordinary = latest.__aiter__(), every.__aiter__()
        await asyncio.sleep(0.05)
        for i in range(5):
            await broker.publish("state", str(i))
        assert await asyncio.wait_for(ordinary.__anext__(), 5) == "0"
        for _ in range(4):
            await asyncio.wait_for(ordinary.__anext__(), 5)  # all delivered by now
        # when it reads, then it gets only the newest, and later ones as they come
        assert await asyncio.wait_for(newest.__anext__(), 5) == "4"
        await broker.publish("state", "5")
        assert await asyncio.wait_for(newest.__anext__(), 5) == "5"


async def test_a_broker_filter_wakes_only_the_subscribers_it_lets_through(backends: Backends):
    # given a subscriber that only wants even numbers and one that wants everything
    broker = backends.broker
    async with (
        broker.subscribe("nums", wants=lambda m: int(m) % 2 == 0) as evens,
        broker.subscribe("nums") as every,
    ):
        wanted, ordinary = evens.__aiter__(), every.__aiter__()
        await asyncio.sleep(0.05)
        # when 1..6 are published
        for i in range(1, 7):
            await broker.publish("nums", str(i))
        # then the filtered one is handed 2, 4, 6 only; the other all six
        assert [await asyncio.wait_for(ordinary.__anext__(), 5) for _ in range(6)] == [
            str(i) for i in range(1, 7)
        ]
        assert [await asyncio.wait_for(wanted.__anext__(), 5) for _ in range(3)] == [
            "2",
            "4",
            "6",
        ]


async def first_heard(
    broker: Broker,
    channel: str,
    names: list[str],
    log: list[str],
    wants_of: Callable[[str], Wants | None] = lambda _: None,
) -> list[asyncio.Task[None]]:
    """One subscriber per name, subscribed in that order (filter ``wants_of(name)``), each
    appending its name to ``log`` when its first message wakes it. Returns the listening
    tasks once all of them are subscribed."""
    subscribed = 0
    ready = asyncio.Event()

    async def listen(name: str) -> None:
        nonlocal subscribed
        async with broker.subscribe(channel, wants=wants_of(name)) as messages:
            subscribed += 1
            if subscribed == len(names):
                ready.set()
            async for _ in messages:
                log.append(name)
                return

    tasks = []
    for name in names:
        tasks.append(asyncio.create_task(listen(name)))
        await asyncio.sleep(0)
    await asyncio.wait_for(ready.wait(), 10)
    await asyncio.sleep(0.05)
    return tasks


async def test_a_big_fan_out_lets_other_work_run_between_slices(backends: Backends):
    # given three slices' worth of subscribers, each logging when it is woken, and a task
    # that logs every loop turn it gets
    broker = backends.broker
    names = [f"s{i}" for i in range(3 * FANOUT_SLICE)]
    log: list[str] = []
    tasks = await first_heard(broker, "big", names, log)
    done = asyncio.Event()

    async def other_work() -> None:
        while not done.is_set():
            log.append("other")
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    # when one message goes to all of them
    await broker.publish("big", "go")
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    done.set()
    await other
    # then everyone heard it, and the other task ran while the fan-out was under way
    woken = [i for i, entry in enumerate(log) if entry != "other"]
    assert len(woken) == len(names)
    assert "other" in log[woken[0] : woken[-1]]


async def test_urgent_subscribers_are_woken_first(backends: Backends):
    # given two slices' worth of ordinary subscribers, then five whose filter says URGENT
    broker = backends.broker
    woken: list[str] = []
    names = [f"n{i}" for i in range(2 * FANOUT_SLICE)] + [f"u{i}" for i in range(5)]

    def wants_of(name: str) -> Wants:
        urgent = name.startswith("u")
        return lambda _: URGENT if urgent else True

    tasks = await first_heard(broker, "line", names, woken, wants_of)
    # when a message goes to all of them
    await broker.publish("line", "tick")
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # then the urgent five were woken before anyone else
    assert sorted(woken[:5]) == [f"u{i}" for i in range(5)]
    assert len(woken) == len(names)


async def test_the_fan_out_reports_how_many_one_message_woke(
    backends: Backends, monkeypatch: pytest.MonkeyPatch
):
    # given three subscribers, one of which filters the message out, and the collector's
    # wave hook replaced by a recorder
    waves: list[int] = []
    monkeypatch.setattr(gc_tuning, "after_wave", waves.append)
    broker = backends.broker
    woken: list[str] = []
    tasks = await first_heard(
        broker, "wave", ["a", "b", "c"], woken, lambda name: lambda _: name != "c"
    )
    # when a message goes out, then the hook hears the two it woke (it decides what a wave is)
    await broker.publish("wave", "tick")
    await asyncio.wait_for(asyncio.gather(*tasks[:2]), 10)
    for task in tasks[2:]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert waves == [2]


async def test_slots_admit_at_most_the_limit_under_concurrency(backends: Backends):
    # given a key with room for 5 holders
    slots = backends.slots
    # when 40 holders race for it
    taken = await asyncio.gather(
        *(slots.acquire("user:1", f"h{i}", limit=5, lease_seconds=30) for i in range(40))
    )
    # then exactly 5 got one, and a holder asking again keeps its own
    assert sum(taken) == 5
    winner = f"h{taken.index(True)}"
    assert await slots.acquire("user:1", winner, limit=5, lease_seconds=30)
    assert await slots.count("user:1") == 5
    # and a release makes room for one more
    await slots.release("user:1", winner)
    assert await slots.acquire("user:1", "late", limit=5, lease_seconds=30)
    assert not await slots.acquire("user:1", "later", limit=5, lease_seconds=30)


async def test_slots_of_a_vanished_holder_lapse_unless_renewed(backends: Backends):
    # given two holders on short leases
    slots = backends.slots
    assert await slots.acquire("user:2", "kept", limit=2, lease_seconds=0.4)
    assert await slots.acquire("user:2", "gone", limit=2, lease_seconds=0.4)
    # when only one renews before the leases end
    await asyncio.sleep(0.25)
    await slots.renew("user:2", ["kept", "never-held"], lease_seconds=5)
    await asyncio.sleep(0.3)
    # then the other's slot is free again, and renewing never adds a holder
    assert await slots.count("user:2") == 1
    assert await slots.acquire("user:2", "new", limit=2, lease_seconds=5)
    assert not await slots.acquire("user:2", "another", limit=2, lease_seconds=5)
