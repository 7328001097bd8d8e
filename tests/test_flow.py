"""Backpressure: app.queue(max_ready=, on_full=), enforced in Redis for every producer."""

from __future__ import annotations

import threading

import pytest

import taskq
from taskq.render import status
from taskq.views import snapshot


def job_records(app: taskq.TaskQ, queue: str) -> int:
    return len(list(app.broker.client.scan_iter(match=f"taskq:{{{queue}}}:job:*")))  # type: ignore[attr-defined]


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
