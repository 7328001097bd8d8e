"""job.abort() and `taskq job APP ID abort`: a running async task is cancelled, a sync one sees
current_job().abort_requested (check_abort() raises taskq.Aborted), a job not started is
cancelled; each ends cancelled, never retried, with who aborted it in info().reason."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from click.testing import CliRunner

import taskq
from taskq.cli import main
from taskq.testing import drain

LEASE = 0.6  # the worker renews (and learns of an abort) every lease/3


def run_until(app: taskq.TaskQ, job: taskq.Job[object], status: str) -> threading.Thread:
    runner = threading.Thread(target=drain, args=(app, ["default"]), kwargs={"timeout": 20})
    runner.start()
    deadline = time.monotonic() + 10  # a hang guard
    while job.status() != status and time.monotonic() < deadline:
        time.sleep(0.01)
    return runner


def test_an_async_task_is_cancelled(url: str) -> None:
    app = taskq.TaskQ(url, lease=LEASE)
    finished = threading.Event()

    @app.task(retries=3)
    async def crawl() -> None:
        await asyncio.sleep(30)
        finished.set()

    job = crawl.delay()
    runner = run_until(app, job, "running")
    assert job.abort("ops on call")
    runner.join(20)
    info = job.info()
    assert info.status is taskq.Status.CANCELLED and info.reason == "aborted: ops on call"
    assert not finished.is_set() and info.attempt == 1  # stopped, not retried


def test_a_sync_task_sees_the_abort_and_stops(url: str) -> None:
    app = taskq.TaskQ(url, lease=LEASE)
    steps: list[int] = []

    @app.task(retries=3)
    def export() -> None:
        for step in range(500):
            taskq.current_job().check_abort()  # raises taskq.Aborted once asked
            steps.append(step)
            time.sleep(0.01)

    job = export.delay()
    runner = run_until(app, job, "running")
    assert job.abort()
    runner.join(20)
    info = job.info()
    assert info.status is taskq.Status.CANCELLED and info.reason is not None
    assert info.reason.startswith("aborted: job.abort() on ") and len(steps) < 500


def test_a_job_not_started_is_cancelled_and_an_ended_one_is_left(app: taskq.TaskQ) -> None:
    @app.task
    def later() -> str:
        return "ran"

    waiting = later.options(delay=60).delay()
    assert waiting.abort("cleanup") and waiting.info().reason == "aborted: cleanup"
    done = later.delay()
    drain(app, ["default"])
    assert not done.abort() and done.status() == "succeeded"


def test_the_cli_aborts_a_job(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli_app  # tests/cli_app.py: the app the CLI tests load

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    job = cli_app.add.options(delay=60).delay(1, 2)
    result = CliRunner().invoke(main, ["job", "cli_app:app", job.id, "abort", "--url", redis_url])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"abort: done ({job.id}, was scheduled)")
    assert "cancelled" in result.output


def test_the_worker_is_told_at_once_not_at_its_next_renewal(redis_url: str) -> None:
    """With a 60 s lease the next renewal is 20 s away; the abort key wakes the lease keeper."""
    app = taskq.TaskQ(redis_url, lease=60)

    @app.task
    async def crawl() -> None:
        await asyncio.sleep(60)

    job = crawl.delay()
    runner = run_until(app, job, "running")
    asked = time.monotonic()
    assert job.abort("now")
    runner.join(15)  # a hang guard, well inside the 20 s to the renewal
    assert job.status() == "cancelled" and time.monotonic() - asked < 15
