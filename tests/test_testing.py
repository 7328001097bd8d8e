"""taskq.testing and the pytest plugin, as a user's test module uses them: an isolated broker,
drain() with a fake clock for delays, retries and cron, current_job() inline, and eager mode."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import taskq
from taskq import testing

app = taskq.TaskQ("redis://127.0.0.1:1/0")  # a user's app: its Redis is never reached in these tests
sent: list[str] = []


@app.task(retries=3, backoff=taskq.Backoff(base=600, jitter=False))  # a ten-minute backoff
def send_email(to: str) -> str:
    if taskq.current_job().attempt < 3:
        raise ConnectionError("smtp down")
    sent.append(to)
    return f"sent to {to}"


@app.task
def report(step: str) -> int:
    taskq.current_job().progress(0.5, step)
    return taskq.current_job().attempt


def test_isolated_drain_moves_the_clock_through_backoffs_and_delays(
        taskq_isolate: Callable[[taskq.TaskQ], taskq.TaskQ], taskq_drain: Callable[..., int]) -> None:
    taskq_isolate(app)
    assert app.url.startswith("memory://isolated-")
    sent.clear()
    job = send_email.delay("ada@example.com")
    later = send_email.options(delay=3 * 86400).delay("bob@example.com")  # beyond the advance below
    assert taskq_drain(app, advance=3600) == 3  # two failures and the success, without waiting
    assert job.result(timeout=1) == "sent to ada@example.com" and sent == ["ada@example.com"]
    assert later.status() == "scheduled"  # due after the hour drain moved the clock by


def test_drain_with_advance_fires_each_cron_tick_the_fake_clock_passes(
        taskq_isolate: Callable[[taskq.TaskQ], taskq.TaskQ], taskq_drain: Callable[..., int]) -> None:
    """A 5-minute cron over a fake hour fires 12 times (as `taskq beat` would, each tick once),
    between a delayed job's runs; the clock keeps its time in the next drain."""
    cron_app = taskq_isolate(taskq.TaskQ("redis://127.0.0.1:1/0", name="cron-test"))
    ticks: list[str] = []

    @cron_app.task
    def rollup() -> None:
        ticks.append(taskq.current_job().id)

    cron_app.schedule("rollup", rollup, cron="*/5 * * * *")
    delayed = rollup.options(delay=1800).delay()
    assert taskq_drain(cron_app, advance=3600) == 13  # 12 ticks and the delayed job
    assert delayed.status() == "succeeded" and len(set(ticks)) == 13
    assert taskq_drain(cron_app, advance=600) == 2  # the next ten minutes: two more ticks
    assert taskq_drain(cron_app) == 0  # nothing is due without moving the clock


def test_isolated_restores_the_app_after_the_block() -> None:
    with testing.isolated(app) as same:
        assert same is app and app.url.startswith("memory://")
        report.delay("x")
        assert app.broker.depths("default").ready == 1
    assert app.url == "redis://127.0.0.1:1/0" and app._broker is None
    with testing.isolated(app):
        assert app.broker.depths("default").ready == 0  # a fresh broker each time


def test_job_context_lets_a_task_that_uses_current_job_run_inline(
        taskq_job_context: Callable[..., object]) -> None:
    with testing.job_context("report", attempt=2) as job:
        assert report("step 2") == 2 and job.attempt == 2 and taskq.current_job().id == job.id


def test_eager_runs_each_job_before_delay_returns(taskq_isolate: Callable[[taskq.TaskQ], taskq.TaskQ],
                                                  taskq_eager: Callable[[taskq.TaskQ], taskq.TaskQ]) -> None:
    taskq_eager(taskq_isolate(app))
    sent.clear()
    job = send_email.delay("eve@example.com")  # retries and backoffs included
    assert job.status() == "succeeded" and job.result(timeout=0.1) == "sent to eve@example.com"
    assert [j.status() for j in report.map(["a", "b"])] == ["succeeded", "succeeded"]


def _returns(call: Callable[[], object]) -> object:
    """call() in a thread, guarded: eager's .delay() used to hang (the test fails instead)."""
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(call()), daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "eager .delay() did not return"
    return got[0]


def test_eager_never_fires_cron_in_an_app_with_schedules(taskq_isolate: Callable[[taskq.TaskQ], taskq.TaskQ],
                                                         taskq_eager: Callable[[taskq.TaskQ], taskq.TaskQ]) -> None:
    """Eager moved a fake clock a year ahead with beat on it: a daily cron ran 365 times per
    .delay(), and an every-5-seconds one never returned. Now only the submitted job runs (its
    retry's backoff and a delay still pass at once)."""
    cron_app = taskq_eager(taskq_isolate(taskq.TaskQ("redis://127.0.0.1:1/0", name="eager-cron")))
    fired: list[str] = []

    @cron_app.task(cron="0 3 * * *")
    def nightly() -> None:
        fired.append("nightly")

    @cron_app.task
    def tick() -> None:
        fired.append("tick")

    cron_app.schedule("every-5s", tick, cron="*/5 * * * * *")

    @cron_app.task(retries=1, backoff=taskq.Backoff(base=3600, jitter=False))
    def work() -> int:
        if taskq.current_job().attempt == 1:
            raise ConnectionError("once")
        return 2

    job = _returns(work.delay)
    assert isinstance(job, taskq.Job) and job.result(timeout=0.1) == 2
    later = _returns(work.options(delay=3 * 86400).delay)
    assert isinstance(later, taskq.Job) and later.result(timeout=0.1) == 2
    assert fired == []


def test_eager_runs_what_a_job_enqueues(taskq_isolate: Callable[[taskq.TaskQ], taskq.TaskQ],
                                        taskq_eager: Callable[[taskq.TaskQ], taskq.TaskQ]) -> None:
    """A .delay() inside a job ran a drain that waited for the queue's running job, itself."""
    nested = taskq_eager(taskq_isolate(taskq.TaskQ("redis://127.0.0.1:1/0", name="eager-nested")))
    ran: list[str] = []

    @nested.task
    def child() -> None:
        ran.append("child")

    @nested.task(queue="other")
    def elsewhere() -> None:
        ran.append("elsewhere")

    @nested.task
    def parent() -> None:
        child.delay()
        elsewhere.options(delay=60).delay()
        ran.append("parent")

    _returns(parent.delay)
    assert ran == ["parent", "child", "elsewhere"]


def test_eager_covers_the_asyncio_producer(taskq_isolate: Callable[[taskq.TaskQ], taskq.TaskQ],
                                           taskq_eager: Callable[[taskq.TaskQ], taskq.TaskQ]) -> None:
    taskq_eager(taskq_isolate(app))
    sent.clear()

    async def go() -> list[str]:
        job = await send_email.delay_async("ann@example.com")
        jobs = await report.map_async(["c"])
        statuses = [await j.status_async() for j in (job, *jobs)]
        await app.aclose()
        return statuses

    assert asyncio.run(go()) == ["succeeded", "succeeded"]


def test_the_readme_test_module_passes_under_pytest(tmp_path: Path) -> None:
    """The README's sample test module, as a user saves and runs it (the plugin comes with taskq)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    [module] = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if b.startswith("# test_emails.py")]
    (tmp_path / "test_emails.py").write_text(module)
    env = {k: v for k, v in os.environ.items() if k != "TASKQ_URL"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "3 passed" in done.stdout, done.stdout + done.stderr
