"""The public API of DESIGN.md section 1, on memory:// and on a real redis-server."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import time

import pytest
from peak import Peak

import taskq
from taskq.testing import drain


def test_delay_runs_and_returns_result(app: taskq.TaskQ) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    job = add.delay(2, 3)
    assert job.status() == "queued" and len(job.id) == 32
    assert drain(app) == 1
    assert job.result(timeout=5) == 5
    assert job.status() is taskq.Status.SUCCEEDED
    assert add(4, 5) == 9  # a plain call runs inline


def test_async_task_runs_on_the_event_loop(app: taskq.TaskQ) -> None:
    @app.task
    async def double(x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    job = double.delay(21)
    drain(app)
    assert job.result(timeout=5) == 42
    assert asyncio.run(double(2)) == 4


def test_results_keep_msgpack_types(app: taskq.TaskQ) -> None:
    @app.task
    def echo(value: object) -> object:
        return value

    job = echo.delay({"a": [1, 2.5, None, True, b"raw", "text"]})
    drain(app)
    assert job.result(timeout=5) == {"a": [1, 2.5, None, True, b"raw", "text"]}


def test_failing_task_is_retried_then_dead_letters_with_traceback(app: taskq.TaskQ) -> None:
    runs: list[int] = []

    @app.task(retries=2, backoff=taskq.Backoff(base=0.01, jitter=False))
    def always_fails() -> None:
        runs.append(1)
        raise ValueError("boom")

    job = always_fails.delay()
    drain(app)
    assert len(runs) == 3  # first attempt + 2 retries
    assert job.status() == "dead"
    with pytest.raises(taskq.TaskFailed) as info:
        job.result(timeout=5)
    assert info.value.reason.startswith("retries_exhausted: ValueError: boom (attempt 3 of 3)")
    assert info.value.error is not None
    assert "Traceback" in info.value.error and 'raise ValueError("boom")' in info.value.error
    assert [e.id for e in app.broker.dead("default")] == [job.id]


def test_retry_then_success(app: taskq.TaskQ) -> None:
    runs: list[int] = []

    @app.task(retries=5, backoff=taskq.Backoff(base=0.01))
    def flaky() -> str:
        runs.append(1)
        if len(runs) < 3:
            raise ConnectionError("try again")
        return "ok"

    job = flaky.delay()
    drain(app)
    assert job.result(timeout=5) == "ok" and len(runs) == 3


def test_backoff_grows_between_attempts(app: taskq.TaskQ) -> None:
    starts: list[float] = []

    @app.task(retries=3, backoff=taskq.Backoff(base=0.1, factor=2, jitter=False))
    def fails() -> None:
        starts.append(time.monotonic())
        raise RuntimeError("no")

    fails.delay()
    drain(app)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(gaps) == 3
    # an attempt can never start before its backoff has passed: 0.1, 0.2, 0.4 s
    for gap, minimum in zip(gaps, [0.1, 0.2, 0.4], strict=True):
        assert gap >= minimum * 0.95


def test_explicit_retry_counts_as_an_attempt(app: taskq.TaskQ) -> None:
    attempts: list[int] = []

    @app.task(retries=2)
    def again() -> None:
        attempts.append(1)
        raise taskq.Retry(delay=0.01)

    job = again.delay()
    drain(app)
    assert len(attempts) == 3 and job.status() == "dead"


def test_reject_goes_straight_to_dead_letters(app: taskq.TaskQ) -> None:
    runs: list[int] = []

    @app.task(retries=5)
    def refuse() -> None:
        runs.append(1)
        raise taskq.Reject("bad input")

    job = refuse.delay()
    drain(app)
    assert runs == [1]
    with pytest.raises(taskq.TaskFailed, match="rejected: bad input"):
        job.result(timeout=5)


def test_dedup_key_returns_the_live_job(app: taskq.TaskQ) -> None:
    @app.task
    def charge(order: int) -> int:
        return order

    first = charge.options(key="order:42").delay(42)
    second = charge.options(key="order:42").delay(42)
    assert second == first and second.id == first.id
    other = charge.options(key="order:43").delay(43)
    assert other.id != first.id
    drain(app)
    assert first.result(timeout=5) == 42
    # once the job has ended the key is free again
    third = charge.options(key="order:42").delay(42)
    assert third.id != first.id


def test_dedup_key_holds_while_scheduled_and_running(app: taskq.TaskQ) -> None:
    started, release = threading.Event(), threading.Event()

    @app.task
    def slow() -> None:
        started.set()
        release.wait(10)

    scheduled = slow.options(key="k", delay=0.3).delay()
    assert slow.options(key="k").delay().id == scheduled.id
    worker = taskq.Worker(app, concurrency=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert started.wait(10)
        assert scheduled.status() == "running"
        assert slow.options(key="k").delay().id == scheduled.id
    finally:
        release.set()
        worker.stop()
        thread.join(10)


def test_delayed_job_waits_until_due(app: taskq.TaskQ) -> None:
    ran_at: list[float] = []

    @app.task
    def stamp() -> None:
        ran_at.append(time.time())

    enqueued = time.time()
    job = stamp.options(delay=dt.timedelta(seconds=0.5)).delay()
    assert job.status() == "scheduled"
    at_job = stamp.options(at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)).delay()
    assert at_job.status() == "scheduled"
    drain(app)
    assert job.status() == "succeeded" and at_job.status() == "succeeded"
    assert min(ran_at) >= enqueued + 0.3 - 0.05 and max(ran_at) >= enqueued + 0.5 - 0.05


def test_result_ttl_expires_results() -> None:
    app = taskq.TaskQ("memory://ttl", result_ttl=0.3)

    @app.task
    def one() -> int:
        return 1

    job = one.delay()
    drain(app)
    assert job.result(timeout=5) == 1
    ttl_ms = app.broker.client.pttl(f"taskq:{{default}}:job:{job.id}")
    assert 0 < ttl_ms <= 300
    time.sleep(0.4)
    with pytest.raises(taskq.JobNotFound):
        job.status()


def test_result_ttl_on_real_redis(redis_url: str) -> None:
    app = taskq.TaskQ(redis_url, result_ttl=7)

    @app.task
    def one() -> int:
        return 1

    job = one.delay()
    drain(app)
    assert job.result(timeout=5) == 1
    assert 0 < app.broker.client.pttl(f"taskq:{{default}}:job:{job.id}") <= 7000


def test_result_timeout(app: taskq.TaskQ) -> None:
    @app.task
    def never_run() -> None: ...

    job = never_run.delay()
    with pytest.raises(taskq.ResultTimeout):
        job.result(timeout=0.2)


def test_cancel_queued_and_scheduled_jobs(app: taskq.TaskQ) -> None:
    runs: list[str] = []

    @app.task
    def work(name: str) -> None:
        runs.append(name)

    queued = work.delay("queued")
    scheduled = work.options(delay=0.2).delay("scheduled")
    kept = work.delay("kept")
    assert queued.cancel() and scheduled.cancel()
    assert queued.status() == "cancelled" and scheduled.status() == "cancelled"
    depths = app.broker.depths("default")
    assert (depths.ready, depths.scheduled) == (1, 0)  # only `kept` is left to run
    drain(app)
    assert runs == ["kept"] and kept.status() == "succeeded"
    with pytest.raises(taskq.JobCancelled):
        queued.result(timeout=1)
    assert not kept.cancel()  # already finished


def test_cancel_while_running_then_failing_ends_the_job_and_frees_its_key(app: taskq.TaskQ) -> None:
    started, go = threading.Event(), threading.Event()

    @app.task(retries=3)
    def flaky() -> None:
        started.set()
        go.wait(10)
        raise ValueError("fails after being cancelled")

    job = flaky.options(key="k1").delay()
    worker = threading.Thread(target=drain, args=(app,))
    worker.start()
    assert started.wait(10)
    outcome: list[BaseException] = []
    waiter = threading.Thread(target=lambda: outcome.extend(_raised(job.result, 30)))
    waiter.start()
    assert job.cancel() is False  # running: it finishes this attempt but is never retried
    go.set()
    waiter.join(10)
    worker.join(10)
    assert not waiter.is_alive(), "result() did not wake when the cancelled job ended"
    assert [type(e) for e in outcome] == [taskq.JobCancelled]
    assert job.status() == "cancelled"
    again = flaky.options(key="k1").delay()
    assert again.id != job.id  # the key was released


def _raised(fn: object, *args: object) -> list[BaseException]:
    try:
        fn(*args)  # type: ignore[operator]
    except BaseException as exc:
        return [exc]
    return []


def test_priority_runs_higher_first(app: taskq.TaskQ) -> None:
    order: list[int] = []

    @app.task
    def record(p: int) -> None:
        order.append(p)

    for p in [0, 5, 9, 1, 9]:
        record.options(priority=p).delay(p)
    drain(app, concurrency=1)
    assert order == [9, 9, 5, 1, 0]


def test_options_route_to_another_queue(app: taskq.TaskQ) -> None:
    @app.task(queue="emails")
    def send(to: str) -> str:
        return to

    job = send.options(queue="urgent").delay("ada@example.com")
    assert job.queue == "urgent"
    assert app.broker.depths("urgent").ready == 1 and app.broker.depths("emails").ready == 0
    drain(app, queues=["urgent"])
    assert job.result(timeout=5) == "ada@example.com"


def test_concurrency_runs_jobs_at_once(app: taskq.TaskQ) -> None:
    peak = Peak()

    @app.task
    def busy() -> None:
        with peak:
            time.sleep(0.2)

    for _ in range(8):
        busy.delay()
    drain(app, concurrency=4)
    assert peak.most == 4


def test_sync_timeout_fails_the_attempt(app: taskq.TaskQ) -> None:
    @app.task(timeout=0.05, retries=0)
    def too_slow() -> None:
        time.sleep(0.2)

    job = too_slow.delay()
    drain(app)
    with pytest.raises(taskq.TaskFailed, match="time limit exceeded"):
        job.result(timeout=5)


def test_async_timeout_cancels_the_coroutine(app: taskq.TaskQ) -> None:
    finished: list[int] = []

    @app.task(timeout=0.05, retries=0)
    async def too_slow() -> None:
        await asyncio.sleep(5)
        finished.append(1)

    job = too_slow.delay()
    drain(app)
    with pytest.raises(taskq.TaskFailed, match="time limit exceeded"):
        job.result(timeout=5)
    assert finished == []


def test_unknown_job_id(app: taskq.TaskQ) -> None:
    with pytest.raises(taskq.JobNotFound):
        app.job("nope").status()


def test_threads_that_first_touch_the_broker_at_once_share_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new app's broker is opened once, however many threads ask for it at the same moment (each
    used to open its own client and pool, and all but one were dropped)."""
    import taskq.app

    opened: list[object] = []
    real = taskq.app.open_broker

    def slow_open(*args: object, **kwargs: object) -> object:
        time.sleep(0.05)  # widen the window in which a second thread would open its own
        broker = real(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(broker)
        return broker

    monkeypatch.setattr(taskq.app, "open_broker", slow_open)
    app = taskq.TaskQ(f"memory://one-broker-{time.monotonic_ns()}")
    start = threading.Barrier(8)
    seen: list[object] = []

    def touch() -> None:
        start.wait()
        seen.append(app.broker)

    threads = [threading.Thread(target=touch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(opened) == 1 and len(seen) == 8 and all(b is opened[0] for b in seen)
