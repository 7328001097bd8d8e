"""An idle worker and a waiting job.result() block in Redis instead of polling."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from redis_server import command_calls

import taskq


def calls_during(client: redis.Redis, seconds: float) -> dict[str, int]:
    before = command_calls(client)
    time.sleep(seconds)
    after = command_calls(client)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    delta.pop("info", None)
    return {k: v for k, v in delta.items() if v}


def test_idle_worker_blocks_in_redis(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url, lease=30)

    @app.task
    def noop() -> None: ...

    worker = taskq.Worker(app, concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.3)  # let it start and block
        delta = calls_during(redis.Redis.from_url(redis_url), 1.5)
        # blocking waits only (the intake's and the lease keeper's, each at most one per 5 s):
        # no fetch loop spinning
        assert delta.get("blpop", 0) <= 2 and sum(v for k, v in delta.items() if k != "blpop") == 0, delta
        job = noop.delay()
        assert job.result(timeout=10) is None  # the blocked worker woke for it
    finally:
        worker.stop()
        thread.join(10)


def test_result_waits_without_polling(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url)
    gate = threading.Event()

    @app.task
    def gated() -> str:
        gate.wait(10)
        return "done"

    job = gated.delay()
    worker = taskq.Worker(app, concurrency=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    results: list[str] = []
    waiter = threading.Thread(target=lambda: results.append(job.result(timeout=20)))
    try:
        while job.status() != "running":
            time.sleep(0.01)
        waiter.start()
        time.sleep(0.2)
        delta = calls_during(redis.Redis.from_url(redis_url), 1.5)
        # the waiter sits in one BLMOVE; the worker's only traffic is its own blocking wait
        assert delta.get("evalsha", 0) + delta.get("hmget", 0) == 0, delta
        gate.set()
        waiter.join(10)
        assert results == ["done"]
    finally:
        gate.set()
        worker.stop()
        thread.join(10)


def test_idle_worker_does_not_fetch_between_blocking_waits(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each blocking wait that times out is followed by another wait, not by a fetch: only a
    wake-up token (or a known due time) makes an idle worker fetch."""
    monkeypatch.setattr("taskq.worker.intake.IDLE_BLOCK", 0.25)
    app = taskq.TaskQ(redis_url, lease=30)

    @app.task
    def noop() -> None: ...

    later = noop.options(delay=1.2).delay()  # the worker learns its due time on its first fetch
    worker = taskq.Worker(app, concurrency=2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)
        delta = calls_during(redis.Redis.from_url(redis_url), 0.8)  # before the delayed job is due
        assert delta.get("blpop", 0) >= 2 and "evalsha" not in delta, delta
        assert later.result(timeout=10) is None  # fetched when due, without a token
    finally:
        worker.stop()
        thread.join(10)


@pytest.mark.parametrize("held_by", ["queue rate", "task rate", "task cap", "ordering key"])
def test_a_worker_held_back_by_a_flow_limit_blocks_instead_of_polling(redis_url: str, held_by: str) -> None:
    """Jobs a limit holds back make no fetch loop: the worker blocks until the window reopens (the
    fetch said when) or a lease ends (which wakes it)."""
    app = taskq.TaskQ(redis_url, lease=30)
    gate = threading.Event()
    if held_by == "queue rate":
        app.queue("default", rate_limit="2/m")
    limits: dict[str, object] = {"task rate": {"rate_limit": "2/m"}, "task cap": {"max_running": 1}}.get(held_by, {})

    @app.task(**limits)  # type: ignore[call-overload]
    def slow(i: int) -> None:
        if held_by in ("task cap", "ordering key"):
            gate.wait(10)  # holds the slot (or the key) while the others wait

    jobs = slow.options(ordering_key="k" if held_by == "ordering key" else None).map(range(5))
    worker = taskq.Worker(app, concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)  # it takes what the limit lets through, then waits
        delta = calls_during(redis.Redis.from_url(redis_url), 1.5)
        assert "evalsha" not in delta and delta.get("blpop", 0) <= 2, delta  # the intake's and the keeper's
        assert app.broker.depths("default").running <= 2
        gate.set()
        if held_by in ("task cap", "ordering key"):  # the ended lease wakes it for the next
            for job in jobs:
                assert job.result(timeout=10) is None
    finally:
        gate.set()
        worker.stop()
        thread.join(10)
