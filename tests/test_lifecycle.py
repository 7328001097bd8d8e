"""Lifecycle fixes of issue 10, in one process on memory:// and real Redis: reserved is not running,
an async task's own TimeoutError, app.job() in any queue, namespaces, the logging pipeline,
one outcome listener seam, and what a worker reports about itself."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import structlog
from logging_state import reset_logging

import taskq
from taskq.broker import redact
from taskq.events import EventKind, JobEvent
from taskq.log import configure
from taskq.testing import drain


def run_worker(worker: taskq.Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


def wait_until(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out (a hang guard, not a timing assertion)"
        time.sleep(0.01)


def test_a_prefetched_job_is_reserved_cancellable_and_never_starts(app: taskq.TaskQ) -> None:
    release, started = threading.Event(), threading.Event()
    ran: list[str] = []

    @app.task
    def hold(name: str) -> str:
        ran.append(name)
        started.set()
        assert release.wait(30)
        return name

    first, second = hold.delay("first"), hold.delay("second")
    worker = taskq.Worker(app, concurrency=1, prefetch=1)
    thread = run_worker(worker)
    try:
        assert started.wait(30)
        wait_until(lambda: second.status() == "reserved")
        assert first.status() == "running"
        depths = app.broker.depths("default")
        assert (depths.running, depths.reserved) == (1, 1)
        assert second.cancel()  # reserved: it will never start
        assert second.status() == "cancelled"
    finally:
        release.set()
    assert first.result(timeout=30) == "first"
    worker.stop()
    thread.join(30)
    assert ran == ["first"]
    with pytest.raises(taskq.JobCancelled):
        second.result(timeout=1)


def test_started_is_when_the_body_starts_not_when_it_was_prefetched(app: taskq.TaskQ) -> None:
    gate = threading.Event()
    marks: dict[str, float] = {}

    @app.task
    def mark(name: str) -> None:
        marks[name] = time.time()
        if name == "a":
            gate.wait(30)

    a, b = mark.delay("a"), mark.delay("b")
    worker = taskq.Worker(app, concurrency=1, prefetch=1)
    thread = run_worker(worker)
    wait_until(lambda: b.status() == "reserved")
    time.sleep(0.3)  # b waits in the buffer a while
    gate.set()
    wait_until(lambda: b.status() == "succeeded")
    worker.stop()
    thread.join(30)
    record = app.broker.job("default", b.id)
    assert record is not None and record.started_ms is not None
    assert record.started_ms / 1000 >= marks["a"] + 0.25  # not when it was leased, with a
    del a


def test_an_async_tasks_own_timeout_error_is_not_taskqs_time_limit(app: taskq.TaskQ) -> None:
    @app.task(retries=0)
    async def own_timeout() -> None:
        await asyncio.wait_for(asyncio.sleep(1), 0.01)

    @app.task(retries=0, timeout=0.05)
    async def over_limit() -> None:
        await asyncio.sleep(5)

    @app.task(retries=0, timeout=5)
    async def own_timeout_inside_a_limit() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(1)

    jobs = own_timeout.delay(), over_limit.delay(), own_timeout_inside_a_limit.delay()
    drain(app)
    errors = []
    for job in jobs:
        with pytest.raises(taskq.TaskFailed) as info:
            job.result(timeout=5)
        errors.append(info.value)
    assert errors[0].reason.startswith("retries_exhausted: TimeoutError")
    assert errors[0].error is not None and "asyncio.wait_for(asyncio.sleep(1), 0.01)" in errors[0].error
    assert errors[1].reason.startswith("retries_exhausted: TimeLimitExceeded: time limit exceeded: "
                                       "cancelled after 0.05s")
    assert errors[2].reason.startswith("retries_exhausted: TimeoutError")
    assert "TimeLimitExceeded" not in (errors[2].error or "")


def test_app_job_finds_a_job_in_any_queue(app: taskq.TaskQ) -> None:
    @app.task(queue="payments")
    def charge(order: str) -> str:
        return order

    job = charge.delay("o77")
    found = app.job(job.id)
    assert found.queue == "payments" and found.status() == "queued"
    drain(app)
    assert app.job(job.id).result(timeout=5) == "o77"
    with pytest.raises(taskq.JobNotFound, match="no job nope in any queue"):
        app.job("nope")
    assert app.job("nope", "payments").queue == "payments"  # with its queue: a handle, no lookup


def test_two_namespaces_on_one_redis_never_take_each_others_jobs(url: str) -> None:
    shop = taskq.TaskQ(url, namespace="shop")
    blog = taskq.TaskQ(url, namespace="blog")

    @shop.task
    def refresh_rates() -> str:
        return "shop"

    @blog.task
    def publish() -> str:
        return "blog"

    mine = refresh_rates.delay()
    theirs = publish.delay()
    assert drain(blog) == 1  # the blog worker ran its own job only, and left the shop's alone
    assert theirs.result(timeout=5) == "blog" and mine.status() == "queued"
    assert blog.broker.dead("default") == []
    assert drain(shop) == 1 and mine.result(timeout=5) == "shop"
    assert blog.known_queues() == ["default"] and shop.job(mine.id).queue == "default"
    with pytest.raises(taskq.JobNotFound):
        blog.job(mine.id)


def test_namespace_from_the_environment_and_bad_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKQ_NAMESPACE", "staging")
    assert taskq.TaskQ("memory://ns").namespace == "staging"
    assert taskq.TaskQ("memory://ns", namespace="prod").namespace == "prod"
    for bad in ("a{b}", "a:b", "a b", ""):
        with pytest.raises(taskq.ConfigError, match="namespace"):
            taskq.TaskQ("memory://ns", namespace=bad or "x y")


def test_job_events_reach_every_listener_once(app: taskq.TaskQ) -> None:
    seen: list[tuple[EventKind, str, int]] = []

    @app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
    def flaky(fail: bool) -> None:
        if fail and taskq.current_job().attempt == 1:
            raise ValueError("once")

    def listener(event: JobEvent) -> None:
        seen.append((event.kind, event.job_id, event.attempt))

    def broken(event: JobEvent) -> None:
        raise RuntimeError("a listener bug must not fail the job")

    ok, retried = flaky.delay(False), flaky.delay(True)
    worker = taskq.Worker(app, concurrency=2, burst=True)
    worker.events.add(listener)
    worker.events.add(broken)
    worker.run()
    assert ok.status() == "succeeded" and retried.status() == "succeeded"
    assert sorted(seen) == sorted([
        (EventKind.STARTED, ok.id, 1), (EventKind.SUCCEEDED, ok.id, 1),
        (EventKind.STARTED, retried.id, 1), (EventKind.RETRYING, retried.id, 1),
        (EventKind.STARTED, retried.id, 2), (EventKind.SUCCEEDED, retried.id, 2),
    ])


def test_the_registry_count_of_jobs_done_does_not_wait_for_a_heartbeat(url: str) -> None:
    app = taskq.TaskQ(url, lease=60)  # heartbeats every 20 s

    @app.task
    def noop() -> None: ...

    jobs = [noop.delay() for _ in range(3)]
    worker = taskq.Worker(app, concurrency=2)
    thread = run_worker(worker)
    try:
        for job in jobs:
            job.result(timeout=10)
        wait_until(lambda: [w.processed for w in app.broker.live_workers()] == [3], timeout=5)
    finally:
        worker.stop()
        thread.join(30)


def test_passwords_never_show_in_urls() -> None:
    assert redact("redis://user:s3cret@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact("redis://:s3cret@h/0") == "redis://:***@h/0"
    assert "s3cret" not in redact("redis://h:6379/0?password=s3cret&db=1")
    assert redact("redis://h:6379/0?password=s3cret&db=1") == "redis://h:6379/0?password=***&db=1"
    assert redact("rediss://h/0?ssl_password=s3cret") == "rediss://h/0?ssl_password=***"
    assert redact("redis://h:6379/0") == "redis://h:6379/0"
    assert "s3cret" not in repr(taskq.TaskQ("redis://h:6379/0?password=s3cret"))


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """Logging as `taskq worker --log-format json` sets it up (the test calls configure: pytest's
    logging plugin restores the root logger's level between a test's phases)."""
    try:
        yield capsys
    finally:
        reset_logging()


def test_task_logging_goes_through_the_pipeline_with_the_job_bound(app: taskq.TaskQ,
                                                                   json_logs: pytest.CaptureFixture[str]) -> None:
    @app.task
    def chatty(n: int) -> None:
        logging.getLogger("shop.tasks").info("charging order %s", n)
        logging.getLogger("shop.tasks").warning("card declined once")
        structlog.get_logger("shop").info("structlog works too")

    configure("info", "json")
    job = chatty.delay(42)
    drain(app)
    logging.getLogger("shop.tasks").info("outside any job")
    # (taskq's own loggers, cached by structlog in an earlier test of this process, may still print
    # in that test's format: a worker process configures once)
    lines = [json.loads(line) for line in json_logs.readouterr().err.splitlines() if line.startswith("{")]
    mine = {e["event"]: e for e in lines if e.get("job_id") == job.id}
    for event, level in [("charging order 42", "info"), ("card declined once", "warning"),
                         ("structlog works too", "info")]:
        e = mine[event]
        assert (e["level"], e["task"], e["queue"], e["attempt"]) == (level, "chatty", "default", 1), e
    assert mine["charging order 42"]["logger"] == "shop.tasks"
    [outside] = [e for e in lines if e["event"] == "outside any job"]
    assert "job_id" not in outside and outside["level"] == "info"  # bound only while a job runs
