"""The asyncio producer: delay_async, map_async and the async job handles, on redis-py's asyncio
client (fakeredis's for memory://), on every deployment kind; never blocking the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest
import redis
from deployments import deployments
from redis_server import RedisServer, command_calls

import taskq
from taskq.testing import drain

any_url = deployments("any_url")


def test_delay_async_and_the_async_handles(any_url: str) -> None:
    app = taskq.TaskQ(any_url, lease=2)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async def produce() -> tuple[list[taskq.Job[int]], taskq.Job[int], list[object]]:
        jobs = await asyncio.gather(*(add.delay_async(i, 1) for i in range(20)))
        later = await add.options(delay=60).delay_async(1, 1)
        seen = [await later.status_async(), (await later.info_async()).task, await later.cancel_async(),
                await later.status_async()]
        mapped = await add.options().starmap_async([(1, 2), (3, 4)])
        await app.aclose()
        return [*jobs], later, [*seen, len(mapped)]

    jobs, _, seen = asyncio.run(produce())
    assert seen == [taskq.Status.SCHEDULED, "add", True, taskq.Status.CANCELLED, 2]

    async def results() -> list[int]:
        out = await asyncio.gather(*(j.result_async(timeout=20) for j in jobs))
        await app.aclose()
        return out

    runner = threading.Thread(target=drain, args=(app, ["default"]))
    runner.start()
    assert asyncio.run(results()) == [i + 1 for i in range(20)]
    runner.join(30)


def test_async_calls_check_like_the_sync_ones(app: taskq.TaskQ) -> None:
    app.queue("small", max_ready=1)

    @app.task(queue="small")
    def one(x: int) -> None: ...

    async def go() -> None:
        with pytest.raises(taskq.EnqueueError):
            await one.delay_async(1, 2)  # type: ignore[call-arg]
        with pytest.raises(taskq.SerializationError):
            await one.delay_async(object())  # type: ignore[arg-type]
        await one.delay_async(1)
        with pytest.raises(taskq.QueueFull, match="is full"):
            await one.delay_async(2)
        with pytest.raises(taskq.JobNotFound):
            await app.job("nope", "small").status_async()
        await app.aclose()

    asyncio.run(go())
    assert app.broker.depths("small").ready == 1


def test_concurrent_delay_async_calls_share_round_trips(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop(i: int) -> None: ...

    client = redis.Redis.from_url(redis_url)

    async def go() -> None:
        await noop.delay_async(0)  # the client connects and the queue is registered
        client.config_resetstat()
        await asyncio.gather(*(noop.delay_async(i) for i in range(100)))
        calls = command_calls(client)
        await app.aclose()
        assert calls.get("evalsha") == 1  # every job was stored by one enqueue_many, on the open connection
        # one record per job, and the history's minute and hour buckets once (lib/stats.lua)
        assert calls.get("hset") == 100 + 2
        assert client.info("stats")["total_connections_received"] <= 1  # (this check's own client)

    asyncio.run(go())
    assert app.broker.depths("default").ready == 101


def test_a_thousand_jobs_enqueued_and_awaited_from_one_loop(redis_url: str) -> None:
    """1000 delay_async and 1000 result_async at once: one blocking wait serves every waiter (a
    connection per waiter would exhaust the pool), and every result arrives. The loop's longest
    stall meanwhile is measured by bench/async_stall.py, not asserted here."""
    app = taskq.TaskQ(redis_url)
    probe = redis.Redis.from_url(redis_url)
    # the server is shared by the session: count only what this test adds
    before = len(probe.client_list())

    @app.task
    def noop(i: int) -> int:
        return i

    async def go() -> list[int]:
        jobs = await asyncio.gather(*(noop.delay_async(i) for i in range(1000)))
        worker = threading.Thread(target=drain, args=(app, ["default"]))
        worker.start()
        values = await asyncio.gather(*(j.result_async(timeout=30) for j in jobs))
        worker.join(30)
        in_use = len(probe.client_list())
        assert in_use - before < 20, in_use - before  # not a connection per waiter
        await app.aclose()
        assert len(probe.client_list()) < in_use  # the loop's connections are closed
        return values

    assert asyncio.run(go()) == list(range(1000))
    probe.close()


def test_calls_waiting_in_line_get_their_own_errors_and_results(app: taskq.TaskQ) -> None:
    """delay_async calls queue up and are packed in chunks: a bad one fails alone, a cancelled
    caller's call is dropped, the rest are stored (the queue is known: the in-line path)."""

    @app.task
    def one(x: int) -> int:
        return x

    async def go() -> list[object]:
        await one.delay_async(0)  # registers the queue: the calls below wait in line
        bad_args = asyncio.ensure_future(one.delay_async(1, 2))  # type: ignore[call-arg]
        bad_value = asyncio.ensure_future(one.delay_async(object()))  # type: ignore[arg-type]
        dropped = asyncio.ensure_future(one.delay_async(-1))
        dropped.cancel()
        good = await asyncio.gather(*(one.delay_async(i) for i in range(1, 251)))
        outcomes = await asyncio.gather(bad_args, bad_value, return_exceptions=True)
        await app.aclose()
        return [type(o).__name__ for o in outcomes] + [len({j.id for j in good}), dropped.cancelled()]

    assert asyncio.run(go()) == ["EnqueueError", "SerializationError", 250, True]
    assert app.broker.depths("default").ready == 251  # the cancelled call wrote nothing


def test_a_gather_of_mixed_calls_stores_each_as_asked(any_url: str) -> None:
    """Calls that wait in line together are grouped per queue, due time, ordering key and task
    limit (one enqueue_many each) and keyed calls go one by one; each caller gets its own job:
    a dedup key names the live job already holding it."""
    app = taskq.TaskQ(any_url)

    @app.task
    def plain(i: int) -> int:
        return i

    @app.task(queue="other", max_running=2)
    def capped(i: int) -> int:
        return i

    async def go() -> dict[str, object]:
        await plain.delay_async(-1)
        await capped.delay_async(-1)  # both queues known: every call below waits in line
        first = await plain.options(key="k").delay_async(100)
        jobs = await asyncio.gather(
            *(plain.delay_async(i) for i in range(3)),
            plain.options(key="k").delay_async(101),
            plain.options(key="k2").delay_async(102),
            *(plain.options(delay=30).delay_async(i) for i in range(3, 5)),
            *(plain.options(ordering_key="o").delay_async(i) for i in range(5, 7)),
            *(capped.delay_async(i) for i in range(7, 9)),
        )
        states = await asyncio.gather(*(j.info_async() for j in jobs))
        await app.aclose()
        return {"ids": len({j.id for j in jobs}), "dedup": jobs[3].id == first.id,
                "queues": [j.queue for j in jobs], "status": [s.status for s in states]}

    out = asyncio.run(go())
    assert out["ids"] == 11 and out["dedup"] is True  # the keyed call named the job holding "k"
    assert out["queues"] == ["default"] * 9 + ["other"] * 2
    assert out["status"] == ["queued"] * 5 + ["scheduled"] * 2 + ["queued"] * 4
    d, o = app.broker.depths("default"), app.broker.depths("other")
    assert (d.ready, d.scheduled, d.ordered) == (7, 2, 1)  # -1, 100 (k), 0-2, 102 (k2), 5; 6 waits behind 5
    assert o.ready == 3
    assert drain(app, advance=60) == 13


def test_calls_in_line_when_redis_dies_each_raise_cannot_reach_it() -> None:
    """Redis gone between two gathers: every waiting call fails with the one-line error (none
    hangs), and the next gather after Redis is back stores its jobs."""
    server = RedisServer()
    try:
        app = taskq.TaskQ(server.url, timeout=1.0)

        @app.task
        def noop(i: int) -> None: ...

        async def go() -> list[BaseException | object]:
            await noop.delay_async(0)  # connected, the queue known: the calls below wait in line
            server.kill()
            failed = await asyncio.gather(*(noop.delay_async(i) for i in range(150)), return_exceptions=True)
            server.start()
            await asyncio.gather(*(noop.delay_async(i) for i in range(10)))
            await app.aclose()
            return failed

        failed = asyncio.run(asyncio.wait_for(go(), 60))
        assert all(isinstance(e, taskq.BrokerUnavailable) for e in failed)
        assert all(str(e).startswith(f"cannot reach Redis at {server.url} (") for e in failed)
        assert app.broker.depths("default").ready == 10  # the first job went with the killed server
    finally:
        server.stop()
