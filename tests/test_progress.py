"""current_job().progress(): stored under the lease token, shown by views.describe, cleared
by a retry; sync and async tasks; bad values refused; outside a worker it is an error."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest

import taskq
from taskq import views
from taskq.testing import drain
from taskq.worker import Worker


def progress_of(app: taskq.TaskQ, job: taskq.Job[object]) -> dict[str, object] | None:
    record = app.broker.job(job.queue, job.id)
    assert record is not None
    return views.describe(app, record).get("progress")  # type: ignore[no-any-return]


def test_progress_of_a_running_job_is_visible(app: taskq.TaskQ) -> None:
    reported, release = threading.Event(), threading.Event()

    @app.task
    def long(n: int) -> int:
        taskq.current_job().progress(0.25, "a quarter")
        taskq.current_job().progress(0.5, "halfway")
        reported.set()
        assert release.wait(30)
        return n

    job = long.delay(7)
    worker = Worker(app, concurrency=2)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert reported.wait(30)
        progress = progress_of(app, job)
        assert progress is not None
        assert progress["fraction"] == 0.5 and progress["text"] == "halfway"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(progress["at"]))
    finally:
        release.set()
        assert job.result(timeout=30) == 7
        worker.stop()
        thread.join(30)
    assert progress_of(app, job) == progress  # the last report stays with the finished job


def test_async_task_reports_progress(app: taskq.TaskQ) -> None:
    @app.task
    async def crunch() -> str:
        await asyncio.sleep(0)
        taskq.current_job().progress(1.0, "done")
        return "ok"

    job = crunch.delay()
    drain(app)
    assert job.result(timeout=5) == "ok"
    assert progress_of(app, job) == {"fraction": 1.0, "text": "done", "at": progress_of(app, job)["at"]}  # type: ignore[index]


def test_a_retry_starts_without_progress(app: taskq.TaskQ) -> None:
    runs: list[dict[str, object] | None] = []

    @app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
    def twice() -> None:
        ctx = taskq.current_job()
        runs.append(progress_of(app, app.job(ctx.id)))
        if ctx.attempt == 1:
            ctx.progress(0.9, "almost")
            raise RuntimeError("first attempt fails")

    job = twice.delay()
    drain(app)
    assert job.status() == "succeeded"
    assert runs == [None, None]  # the second attempt did not inherit the first one's 0.9


def test_a_delivery_that_lost_its_lease_cannot_write_progress(app: taskq.TaskQ) -> None:
    @app.task
    def noop() -> None: ...

    job = noop.delay()
    [delivery] = app.broker.fetch("default", 1, 0, "w1").deliveries
    assert app.broker.progress("default", job.id, delivery.token, 0.1, "mine")
    assert not app.broker.progress("default", job.id, "w0:1", 0.2, "stale token")
    assert progress_of(app, job)["text"] == "mine"  # type: ignore[index]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half"])
def test_bad_progress_values_are_refused(app: taskq.TaskQ, bad: object) -> None:
    errors: list[str] = []

    @app.task
    def report() -> None:
        try:
            taskq.current_job().progress(bad)  # type: ignore[arg-type]
        except ValueError as exc:
            errors.append(str(exc))

    report.delay()
    drain(app)
    assert errors and "progress must be a number from 0.0 to 1.0" in errors[0]


def test_progress_outside_a_worker_is_an_error() -> None:
    with pytest.raises(taskq.TaskqError, match="only available inside a task"):
        taskq.current_job().progress(0.5)
