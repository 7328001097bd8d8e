"""Bulk enqueue: task.map / task.starmap / app.enqueue_many, and prefetching workers."""

from __future__ import annotations

import time

import pytest

import taskq
from taskq.broker.base import Depths
from taskq.testing import drain


def test_map_and_starmap_enqueue_in_batches_and_run(app: taskq.TaskQ) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    @app.task(queue="adds", priority=4)
    def add(x: int, y: int = 0) -> int:
        return x + y

    squares = square.map(range(2500))  # more than one script call of 1000
    adds = add.starmap([(i, i) for i in range(10)] + [(5,)])
    assert len(squares) == 2500 and len({j.id for j in squares}) == 2500
    assert app.broker.depths("default").ready == 2500
    assert app.broker.depths("adds").ready == 11
    assert {j.status() for j in squares + adds} == {"queued"}
    drain(app, ["default", "adds"], concurrency=8)
    assert [j.result(timeout=5) for j in squares[:5]] == [0, 1, 4, 9, 16]
    assert [j.result(timeout=5) for j in adds] == [2 * i for i in range(10)] + [5]


def test_map_options_delay_and_queue(app: taskq.TaskQ) -> None:
    @app.task
    def echo(x: str) -> str:
        return x

    jobs = echo.options(delay=0.3, queue="later").map(["a", "b"])
    assert {j.status() for j in jobs} == {"scheduled"} and {j.queue for j in jobs} == {"later"}
    time.sleep(0.35)
    drain(app, ["later"])
    assert [j.result(timeout=5) for j in jobs] == ["a", "b"]
    with pytest.raises(taskq.ConfigError, match="cannot take key="):
        echo.options(key="k").map(["a"])


@pytest.mark.parametrize("bad", [[(1,), (1, 2, 3)], [(1,), (object(),)]])
def test_a_bad_item_enqueues_nothing(app: taskq.TaskQ, bad: list[tuple[object, ...]]) -> None:
    @app.task
    def one(x: object) -> None: ...

    with pytest.raises((taskq.EnqueueError, taskq.SerializationError)):
        one.starmap(bad)
    assert app.broker.depths("default") == Depths(ready=0, scheduled=0, running=0, dead=0)


def test_enqueue_many_mixes_tasks_and_keeps_order(app: taskq.TaskQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(queue="other")
    def neg(x: int) -> int:
        return -x

    jobs = app.enqueue_many([(add, (1, 2)), (neg, (3,)), (add, (), {"x": 4, "y": 5})])
    assert [j.queue for j in jobs] == ["default", "other", "default"]
    drain(app, ["default", "other"])
    assert [j.result(timeout=5) for j in jobs] == [3, -3, 9]
    other = taskq.TaskQ("memory://someone-else")

    @other.task
    def foreign() -> None: ...

    with pytest.raises(taskq.ConfigError, match="not a task of this app"):
        app.enqueue_many([(add, (1, 2)), (foreign, ())])
    with pytest.raises(taskq.SerializationError):
        app.enqueue_many([(add, (1, 2)), (neg, (object(),))])
    assert app.broker.depths("default").ready == 0 and app.broker.depths("other").ready == 0


def test_prefetched_jobs_are_given_back_at_shutdown_not_run(app: taskq.TaskQ) -> None:
    """A worker leases up to concurrency + prefetch jobs; on a graceful stop the prefetched
    ones (never started) go straight back to the queue."""
    started: list[int] = []

    @app.task
    def slow(i: int) -> None:
        started.append(i)
        time.sleep(0.5)

    jobs = slow.map(range(6))
    worker = taskq.Worker(app, concurrency=2, prefetch=3)
    import threading

    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while app.broker.depths("default").reserved < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    depths = app.broker.depths("default")
    assert (depths.running, depths.reserved) == (2, 3)  # 2 running + 3 prefetched, all leased
    worker.stop()
    thread.join(10)
    assert sorted(started) == [0, 1]  # only the two that were running ran
    assert [j.status() for j in jobs[:2]] == ["succeeded", "succeeded"]
    assert {j.status() for j in jobs[2:]} == {"queued"}  # 3 given back + 1 never fetched


def test_bulk_at_maxmemory_raises_and_the_client_stays_usable(redis_url: str) -> None:
    """Batches are sent back to back (replies read at the end): a refused batch raises
    BrokerOutOfMemory after every reply is read, and the next call on the same app works."""
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop(i: int) -> None: ...

    client = app.broker.client
    client.setrange("padding", (1 << 20) - 1, b"x")
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) - (256 << 10))
    try:
        with pytest.raises(taskq.BrokerOutOfMemory, match="out of memory"):
            noop.map(range(2500))
    finally:
        client.config_set("maxmemory", 0)
    assert len(noop.map(range(2500))) == 2500
    assert app.broker.depths("default").ready == 2500  # the refused call wrote nothing
