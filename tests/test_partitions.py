"""Partitions through the API (promise 12): fair turns behind a big backlog, per-partition caps
held by several workers at once, RateLimited(partition=True) holding back only its partition, an
adaptive limit that finds a partner's capacity, jobs given partitions per call and per item, and
bad input refused at the call. On memory://, a redis-server and (fairness) a Redis Cluster."""

from __future__ import annotations

import collections
import threading
import time
from typing import Any

import pytest
from deployments import deployments

import taskq
from taskq.testing import drain

fair_url = deployments("fair_url", "memory", "redis", "cluster")


def run_three_workers(app: taskq.TaskQ, queue: str) -> int:
    """Three workers of 8 slots each (in this process, on threads) until the queue is empty:
    how many jobs they ran."""
    workers = [taskq.Worker(app, [queue], concurrency=8, burst=True) for _ in range(3)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return sum(w.processed for w in workers)


def test_a_small_partition_never_waits_behind_a_big_ones_backlog(fair_url: str) -> None:
    app = taskq.TaskQ(fair_url, lease=5)
    app.queue("deliveries", fair=True)
    ran: list[str] = []

    @app.task(queue="deliveries")
    def deliver(partition: str, i: int) -> None:
        ran.append(partition)

    deliver.options(partition="big").starmap(("big", i) for i in range(5000))
    for n in range(10):
        deliver.options(partition=f"small{n}").starmap((f"small{n}", i) for i in range(20))
    drain(app, concurrency=4, timeout=240)
    assert len(ran) == 5200
    last_small = max(i for i, p in enumerate(ran) if p != "big")
    assert ran[:last_small + 1].count("big") < 500, ran[:last_small + 1].count("big")


def test_a_partitions_cap_holds_across_three_workers(app: taskq.TaskQ) -> None:
    app.queue("calls", partition_max_running=2)
    lock = threading.Lock()
    running: collections.Counter[str] = collections.Counter()
    most: collections.Counter[str] = collections.Counter()
    overall = [0, 0]

    @app.task(queue="calls")
    def call(partner: str) -> None:
        with lock:
            running[partner] += 1
            most[partner] = max(most[partner], running[partner])
            overall[0] += 1
            overall[1] = max(overall[1], overall[0])
        time.sleep(0.02)
        with lock:
            running[partner] -= 1
            overall[0] -= 1

    call.map([p for p in "abc" for _ in range(12)], partition=lambda p: p)
    assert run_three_workers(app, "calls") == 36
    assert max(most.values()) == 2, most  # never 3 of one partner at once, on any worker
    assert overall[1] > 2  # while the partners' jobs ran side by side


def test_rate_limited_with_partition_holds_back_only_that_partition(app: taskq.TaskQ) -> None:
    app.queue("hosts", fair=True)
    starts: list[tuple[str, float]] = []
    raised: list[float] = []

    @app.task(queue="hosts")
    def push(host: str, i: int) -> None:
        starts.append((host, time.monotonic()))
        if host == "slow" and not raised:
            raised.append(time.monotonic())
            raise taskq.RateLimited(retry_after=0.6, partition=True)
        time.sleep(0.01)

    push.starmap((("slow", i) for i in range(3)), partition=lambda args: args[0])
    push.starmap((("fast", i) for i in range(40)), partition=lambda args: args[0])
    drain(app, concurrency=2, timeout=30)
    assert [h for h, _ in starts].count("slow") == 4  # the one that was rate limited ran again
    # a job of it already handed to the worker (in the same fetch) may start; none is fetched after
    backoff = (raised[0] + 0.1, raised[0] + 0.55)
    assert [t for h, t in starts if h == "slow" and backoff[0] < t < backoff[1]] == []
    assert any(backoff[0] < t < backoff[1] for h, t in starts if h == "fast")  # the other went on


def test_info_shows_a_backoff_and_it_ends(app: taskq.TaskQ) -> None:
    app.queue("hosts")
    p = app.partition("hosts", "example.com")
    p.backoff(30)
    info = p.info()
    assert info.paused_until is not None and not info.paused and info.name == "example.com"
    p.backoff(0)
    assert p.info().paused_until is None


def test_an_adaptive_limit_finds_the_partners_capacity(app: taskq.TaskQ) -> None:
    capacity = 3
    app.queue("api", partition_max_running=taskq.Adaptive(start=1, max=32))
    lock = threading.Lock()
    in_flight: collections.Counter[str] = collections.Counter()
    limits: list[int] = []
    rejected = [0]

    @app.task(queue="api")
    def call(partner: str, i: int) -> None:
        with lock:
            in_flight[partner] += 1
            over = in_flight[partner] > capacity
        try:
            if over:
                rejected[0] += 1
                raise taskq.RateLimited(retry_after=0.02, partition=True)
            time.sleep(0.005)
        finally:
            with lock:
                in_flight[partner] -= 1

    call.starmap((("partner", i) for i in range(400)), partition=lambda args: args[0])
    worker = taskq.Worker(app, ["api"], concurrency=16, burst=True)
    thread = threading.Thread(target=worker.run)
    thread.start()
    while thread.is_alive():
        limits.append(app.partition("api", "partner").info().max_running or 0)
        thread.join(0.02)
    assert worker.processed >= 400
    assert max(limits) >= 2  # it grew past its start while the partner kept up
    assert 1 <= limits[-1] <= 2 * capacity + 2  # and settled near the partner's capacity (wide bounds)


def test_a_jobs_partition_per_call_per_item_and_per_signature(app: taskq.TaskQ) -> None:
    @app.task
    def work(x: str) -> str:
        return x

    one = work.options(partition="t1").delay("a")
    mapped = work.map(["h1", "h2", "h1"], partition=lambda x: f"host:{x}")
    many = app.enqueue_many([work.options(partition="t2").s("b"), (work, ("c",)), work.options(partition="t3").s("d")])
    drain(app)
    got = [j.info().partition for j in (one, *mapped, *many)]
    assert got == ["t1", "host:h1", "host:h2", "host:h1", "t2", None, "t3"]
    assert [j.result(timeout=5) for j in mapped] == ["h1", "h2", "h1"]  # in the items' order


@pytest.mark.parametrize("call", [
    lambda app, t: t.options(partition=""),
    lambda app, t: t.options(partition=5),
    lambda app, t: t.options(partition="a\0b"),
    lambda app, t: t.options(partition="x" * 201),
    lambda app, t: t.map([1], partition=lambda x: ""),
    lambda app, t: app.queue("q", partition_max_running=0),
    lambda app, t: app.queue("q", partition_max_running=-1),
    lambda app, t: app.queue("q", partition_max_running="4"),
    lambda app, t: app.queue("q", partition_rate_limit="fast"),
    lambda app, t: app.queue("q", fair="yes"),
    lambda app, t: taskq.Adaptive(start=0, max=4),
    lambda app, t: taskq.Adaptive(start=8, max=4),
    lambda app, t: app.partition("q", ""),
    lambda app, t: app.partition("q", "a").limit(max_running=-1),
    lambda app, t: app.partition("q", "a").limit(rate_limit="1/day"),
    lambda app, t: app.partition("q", "a").backoff(-1),
])
def test_bad_partition_input_is_refused_in_one_line(call: Any) -> None:
    app = taskq.TaskQ("memory://partition-input")

    @app.task
    def noop(x: int = 0) -> None: ...

    with pytest.raises(taskq.ConfigError) as info:
        call(app, noop)
    assert "\n" not in str(info.value)


def test_a_partitions_rate_limit_holds_across_three_workers(app: taskq.TaskQ) -> None:
    app.queue("calls", partition_rate_limit="10/s")

    @app.task(queue="calls")
    def call(partner: str) -> None: ...

    jobs = call.map([p for p in "ab" for _ in range(15)], partition=lambda p: p)
    assert run_three_workers(app, "calls") == 30
    for partner in "ab":  # the starts of each partner, by Redis's clock (the records' started_ms)
        infos = [j.info() for j in jobs]
        starts = sorted(i.started_at.timestamp() for i in infos if i.partition == partner and i.started_at)
        assert max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts) == 10  # never more in a second
