"""Hooks (@app.on) and middleware (@app.middleware): what they see, in which process and order,
and that a slow or failing hook never slows or fails a job."""

from __future__ import annotations

import asyncio
import threading

import pytest

import taskq
from taskq import events
from taskq.testing import drain


def test_hooks_see_every_kind_of_event(app: taskq.TaskQ) -> None:
    seen: list[tuple[str, str, int]] = []
    for kind in ("enqueued", "started", "succeeded", "retrying", "dead", "cancelled"):
        app.on(kind)(lambda e: seen.append((e.kind.value, e.task, e.attempt)))

    @app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
    def flaky(fail: bool) -> int:
        if fail:
            raise ValueError("no")
        return 1

    @app.task
    def later() -> None: ...

    flaky.delay(False)
    flaky.delay(True)
    later.options(delay=60).delay().cancel()
    drain(app, ["default"])
    assert app.hooks.flush()
    assert sorted(seen) == sorted([
        ("enqueued", "flaky", 1), ("enqueued", "flaky", 1), ("enqueued", "later", 1),
        ("started", "flaky", 1), ("succeeded", "flaky", 1),
        ("started", "flaky", 1), ("retrying", "flaky", 1), ("started", "flaky", 2), ("dead", "flaky", 2),
        ("cancelled", "later", 1),  # by the process that cancelled it (it never reached a worker)
    ])


def test_a_job_cancelled_before_it_ran_gives_its_event_where_it_was_cancelled(app: taskq.TaskQ) -> None:
    """cancel(), cancel_async(), abort() of a job not started, and app.job(id).cancel() (as the
    CLI does): one "cancelled" event each, in the cancelling process; a second cancel gives none."""
    seen: list[tuple[str, str, str | None]] = []
    app.on("cancelled")(lambda e: seen.append((e.job_id, e.task, e.reason)))

    @app.task
    def later(i: int) -> None: ...

    jobs = [later.options(delay=60).delay(i) for i in range(4)]
    assert jobs[0].cancel() and not jobs[0].cancel()

    async def go() -> bool:
        done = await jobs[1].cancel_async()
        await app.aclose()
        return done

    assert asyncio.run(go())
    assert jobs[2].abort(by="ops")
    assert app.job(jobs[3].id).cancel()
    assert app.hooks.flush()
    assert seen == [(jobs[0].id, "later", None), (jobs[1].id, "later", None), (jobs[2].id, "later", "aborted: ops"),
                    (jobs[3].id, "later", None)]


def test_a_running_job_cancelled_gives_a_cancelled_event(app: taskq.TaskQ) -> None:
    cancelled: list[str] = []
    app.on("cancelled")(lambda e: cancelled.append(e.job_id))
    go = threading.Event()

    @app.task(retries=2)
    def stubborn() -> None:
        go.wait(10)
        raise ValueError("would retry")

    job = stubborn.delay()
    runner = threading.Thread(target=drain, args=(app, ["default"]))
    runner.start()
    while job.status() != "running":
        go.wait(0.01)
    job.cancel()
    go.set()
    runner.join(20)
    assert app.hooks.flush() and cancelled == [job.id]


class Logged:
    """Stands in for a module's structlog logger: keeps what .exception() was called with."""

    def __init__(self) -> None:
        self.exceptions: list[dict[str, object]] = []

    def exception(self, event: str, **fields: object) -> None:
        self.exceptions.append({"event": event, **fields})

    def __getattr__(self, level: str) -> object:  # info, warning...: the worker's own lines
        return lambda *args, **kwargs: None


def test_a_slow_or_failing_hook_never_slows_or_fails_the_job(app: taskq.TaskQ,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    logged = Logged()
    monkeypatch.setattr(events, "log", logged)
    release = threading.Event()
    app.on("succeeded")(lambda e: release.wait(10))  # blocks its thread, not the job's

    def broken(event: taskq.JobEvent) -> None:
        raise RuntimeError("hook bug")

    app.on("started")(broken)

    @app.task
    def one() -> str:
        return "done"

    jobs = [one.delay() for _ in range(3)]
    drain(app, ["default"])
    assert [j.result(timeout=5) for j in jobs] == ["done"] * 3  # while the slow hook still waits
    release.set()
    assert app.hooks.flush()
    assert len(logged.exceptions) == 1, logged.exceptions  # once, not once per job
    [failure] = logged.exceptions
    assert failure["event"] == "event listener failed" and str(failure["listener"]).endswith("broken")


def test_middleware_wraps_every_attempt_in_order_and_sees_the_outcome(app: taskq.TaskQ) -> None:
    calls: list[str] = []

    @app.middleware
    def outer(job: taskq.JobContext, call_next):  # type: ignore[no-untyped-def]
        calls.append(f"outer>{job.task}:{job.attempt}")
        try:
            result = call_next()
        except ValueError as exc:
            calls.append(f"outer saw {exc}")
            raise
        calls.append(f"outer<{result}")
        return result

    @app.middleware
    def inner(job: taskq.JobContext, call_next):  # type: ignore[no-untyped-def]
        calls.append("inner>")
        return call_next() * 10

    @app.task(retries=0)
    def value(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    ok = value.delay(4)
    bad = value.delay(-1)
    drain(app, ["default"], concurrency=1)
    assert ok.result(timeout=5) == 40  # what the middleware returned is the result
    assert bad.status() == "dead"
    assert calls.count("outer>value:1") == 2 and "outer<40" in calls and "outer saw negative" in calls
    assert calls.index("outer>value:1") < calls.index("inner>")


def test_async_middleware_awaits_async_tasks(app: taskq.TaskQ) -> None:
    seen: list[object] = []

    @app.middleware
    async def timing(job: taskq.JobContext, call_next):  # type: ignore[no-untyped-def]
        result = await call_next()
        seen.append(result)
        return result

    @app.middleware
    def passthrough(job: taskq.JobContext, call_next):  # type: ignore[no-untyped-def]
        return call_next()  # for an async task: the awaitable, awaited by the caller

    @app.task
    async def double(x: int) -> int:
        return 2 * x

    job = double.delay(21)
    drain(app, ["default"])
    assert job.result(timeout=5) == 42 and seen == [42]


def test_bad_hooks_and_middleware_are_config_errors(app: taskq.TaskQ) -> None:
    with pytest.raises(taskq.ConfigError, match="unknown event 'finished'"):
        app.on("finished")
    with pytest.raises(taskq.ConfigError, match=r"needs a function \(job, call_next\)"):
        app.middleware(lambda job: None)  # type: ignore[arg-type]
