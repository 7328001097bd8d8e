"""Backpressure: app.queue(max_ready=, on_full=), enforced in Redis for every producer."""

from __future__ import annotations

import threading
import time

import pytest
from peak import Peak

import taskq
from taskq.cli.render import status
from taskq.views import snapshot


def job_records(app: taskq.TaskQ, queue: str) -> int:
    return len(list(app.broker.client.scan_iter(match=f"taskq:{{{queue}}}:job:*")))  # type: ignore[attr-defined]


def run_fleet(app: taskq.TaskQ, queue: str, jobs: list[taskq.Job[None]]) -> None:
    """Three workers of 8 slots each on `queue` (threads) until every job has ended."""
    workers = [taskq.Worker(app, [queue], concurrency=8) for _ in range(3)]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        for job in jobs:
            job.result(timeout=30)
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(10)


def test_a_full_queue_refuses_the_next_job_and_writes_nothing(app: taskq.TaskQ) -> None:
    app.queue("inbox", max_ready=100)

    @app.task(queue="inbox")
    def handle(i: int) -> None: ...

    for i in range(100):
        handle.delay(i)
    with pytest.raises(taskq.QueueFull, match=r"queue 'inbox' is full: 100 ready jobs \(max_ready\)") as info:
        handle.delay(100)
    assert "\n" not in str(info.value)
    assert app.broker.depths("inbox").ready == 100 and job_records(app, "inbox") == 100
    later = handle.options(delay=60).delay(101)  # a delayed job is not ready: it is not refused
    assert later.status() == "scheduled"


def test_a_bulk_enqueue_is_all_or_nothing(app: taskq.TaskQ) -> None:
    app.queue("inbox", max_ready=100)

    @app.task(queue="inbox")
    def handle(i: int) -> None: ...

    handle.map(range(60))
    with pytest.raises(taskq.QueueFull, match="41 more would pass its 100 ready jobs"):
        handle.map(range(41))
    assert app.broker.depths("inbox").ready == 60 and job_records(app, "inbox") == 60
    assert len(handle.map(range(40))) == 40
    assert app.broker.depths("inbox").ready == 100


def test_block_waits_for_a_worker_to_make_room(app: taskq.TaskQ) -> None:
    app.queue("inbox", max_ready=2, on_full="block", block_timeout=20)

    @app.task(queue="inbox")
    def handle(i: int) -> None: ...

    handle.delay(0)
    handle.delay(1)
    done: list[taskq.Job[None]] = []
    producer = threading.Thread(target=lambda: done.append(handle.delay(2)))
    producer.start()
    producer.join(0.3)
    assert producer.is_alive() and not done  # blocked: the queue is full
    taken = app.broker.fetch("inbox", 1, 0, "w").deliveries  # a worker takes one job: room for one
    producer.join(20)
    assert len(taken) == 1 and len(done) == 1 and done[0].status() == "queued"
    assert app.broker.depths("inbox").ready == 2


def test_block_gives_up_after_its_timeout(app: taskq.TaskQ) -> None:
    app.queue("inbox", max_ready=1, on_full="block", block_timeout=0.2)

    @app.task(queue="inbox")
    def handle(i: int) -> None: ...

    handle.delay(0)
    with pytest.raises(taskq.QueueFull, match=r"waited 0.2s for room"):
        handle.delay(1)
    assert app.broker.depths("inbox").ready == 1


def test_status_shows_the_limits(app: taskq.TaskQ) -> None:
    app.queue("inbox", max_ready=100, on_full="block", block_timeout=5)
    data = snapshot(app)
    assert data["limits"] == {"inbox": "max_ready=100 (block, waits up to 5s)"}
    assert "limits of inbox: max_ready=100 (block, waits up to 5s)" in status(data)


@pytest.mark.parametrize(("options", "message"), [
    ({"max_ready": 0}, "max_ready must be an int >= 1"),
    ({"max_ready": 10, "on_full": "wait"}, "on_full must be 'raise' or 'block'"),
    ({"max_ready": 10, "block_timeout": -1}, "block_timeout must be >= 0"),
])
def test_bad_policies_are_config_errors(app: taskq.TaskQ, options: dict[str, object], message: str) -> None:
    with pytest.raises(taskq.ConfigError, match=message):
        app.queue("inbox", **options)  # type: ignore[arg-type]


def test_a_rate_limit_holds_across_every_worker(app: taskq.TaskQ) -> None:
    app.queue("api", rate_limit="20/s")

    @app.task(queue="api")
    def call(i: int) -> None: ...

    jobs = call.map(range(50))
    run_fleet(app, "api", jobs)
    starts = sorted(r.started_ms for r in app.broker.jobs("api", [j.id for j in jobs]) if r and r.started_ms)
    assert len(starts) == 50
    busiest = max(sum(1 for s in starts if t <= s < t + 1000) for t in starts)  # Redis's clock, as the limit's
    assert busiest == 20  # never more in any sliding second, and the limit was reached
    assert snapshot(app)["limits"] == {"api": "rate_limit=20/s"}


def test_a_bad_rate_limit_is_a_config_error(app: taskq.TaskQ) -> None:
    for bad in ("20", "0/s", "20/d", "x/s"):
        with pytest.raises(taskq.ConfigError, match="rate_limit must look like '100/s'"):
            app.queue("api", rate_limit=bad)


def test_a_concurrency_cap_holds_across_every_worker(app: taskq.TaskQ) -> None:
    app.queue("render", max_running=2)
    peak = Peak()

    @app.task(queue="render")
    def draw(i: int) -> None:
        with peak:
            time.sleep(0.05)

    jobs = draw.map(range(12))
    run_fleet(app, "render", jobs)
    assert peak.most == 2  # never more, across 3 workers of 8 slots each, and the cap was used
    assert snapshot(app)["limits"] == {"render": "max_running=2"}
