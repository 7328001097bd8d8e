"""keep_args, listing ended jobs, due and retry times, run now (DESIGN §1.1): the newest N
succeeded jobs of a queue keep their message, the N+1-th loses it (lib/finish.lua); `taskq job
--state succeeded|cancelled --task --grep`; JobInfo.due_at of a scheduled job and of a retry
waiting (shown `retrying`); job.run_now(), `taskq job ID run-now` and the dashboard's button.
On memory://, redis and Cluster."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from click.testing import CliRunner
from deployments import deployments
from starlette.testclient import TestClient

import taskq
from taskq import job_views, views
from taskq.cli import main
from taskq.testing import drain
from taskq.web import create_app

url = deployments("url", "memory", "redis", "cluster")


def kept(app: taskq.TaskQ, job: taskq.Job[object]) -> bool:
    """Whether the job's record keeps its message."""
    return views.describe(app, views.find(app, job.id, job.queue))["args"] is not None


def test_the_newest_n_succeeded_keep_their_args_the_one_before_loses_them(url: str) -> None:
    app = taskq.TaskQ(url)
    app.queue("default", keep_args=3)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    jobs = []
    for i in range(5):  # one at a time: they end in this order
        jobs.append(add.delay(i, 100))
        drain(app)
    assert [kept(app, j) for j in jobs] == [False, False, True, True, True]
    view = views.describe(app, views.find(app, jobs[-1].id))
    assert view["args"] == [4, 100] and view["result"] == 104


def once(app: taskq.TaskQ) -> None:
    """Run what is ready now, not waiting for scheduled jobs."""
    worker = taskq.Worker(app, concurrency=2, burst=True)
    worker.burst_waits_for_scheduled = False
    worker.run()


def test_keep_args_zero_keeps_none(url: str) -> None:
    app = taskq.TaskQ(url)
    app.queue("default", keep_args=0)

    @app.task
    def noop(x: int) -> None: ...

    job = noop.delay(1)
    drain(app)
    assert not kept(app, job)


def test_listing_succeeded_and_cancelled_with_task_and_grep(url: str) -> None:
    app = taskq.TaskQ(url)

    @app.task
    def send(to: str) -> None: ...

    @app.task
    def other(x: int) -> None: ...

    sent = [send.delay(f"user{i}@example.com") for i in range(3)]
    o = other.delay(7)
    drain(app)
    late = send.options(delay=600).delay("never@example.com")
    late.cancel()
    rows = job_views.ended_jobs(app, ["default"], "succeeded")
    assert {r["id"] for r in rows} == {*(j.id for j in sent), o.id}
    assert [r["id"] for r in job_views.ended_jobs(app, ["default"], "succeeded", task="other")] == [o.id]
    found = job_views.ended_jobs(app, ["default"], "succeeded", grep="USER1@")
    assert [r["id"] for r in found] == [sent[1].id]
    assert [r["id"] for r in job_views.ended_jobs(app, ["default"], "cancelled")] == [late.id]
    assert job_views.ended_jobs(app, ["default"], "cancelled", grep="nobody") == []


def test_due_at_of_a_scheduled_job_and_of_a_retry_waiting_and_run_now(url: str) -> None:
    app = taskq.TaskQ(url)
    calls: list[int] = []

    @app.task(retries=2, backoff=taskq.Backoff(base=600, jitter=False))
    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("once")

    later = flaky.options(delay=600).delay()
    info = later.info()
    assert info.status is taskq.Status.SCHEDULED and info.due_at is not None
    assert 590 < (info.due_at - info.enqueued_at).total_seconds() <= 601  # type: ignore[operator]
    assert later.cancel()
    job = flaky.delay()
    assert job.info().due_at is None  # queued: not waiting for a time
    once(app)  # the first attempt fails: its retry waits (300 s, the backoff's cap)
    info = job.info()
    assert info.status is taskq.Status.FAILED and info.retrying and info.due_at is not None
    row = views.queue_jobs(app, "default", "scheduled")[0]
    assert row["status"] == "retrying" and row["due"] and row["attempt"] == 2
    assert views.describe(app, views.find(app, job.id))["status"] == "retrying"
    assert job.run_now() and job.info().due_at is None
    once(app)
    assert job.status() is taskq.Status.SUCCEEDED and len(calls) == 2
    assert not job.run_now() and not asyncio.run(job.run_now_async())  # ended: nothing to move


def test_cli_lists_ended_jobs_and_runs_now(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)

    def taskq_cli(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, list(args), prog_name="taskq")
        return result.exit_code, result.output

    job = cli_app.add.options(delay=600).delay(1, 2)
    code, out = taskq_cli("job", "cli_app:app", job.id, "--json")
    assert code == 0 and json.loads(out)["due"] is not None, out
    code, out = taskq_cli("job", "cli_app:app", "-q", "default", "--state", "scheduled")
    assert code == 0 and job.id in out and "due/ended" in out, out
    code, out = taskq_cli("job", "cli_app:app", job.id, "run-now")
    assert code == 0 and "run-now: done" in out and job.status() is taskq.Status.QUEUED, out
    code, out = taskq_cli("job", "cli_app:app", job.id, "run-now")
    assert code == 1 and "not changed" in out and "Traceback" not in out, out
    job.cancel()
    code, out = taskq_cli("job", "cli_app:app", "--state", "cancelled", "--task", "add")
    assert code == 0 and job.id in out, out
    code, out = taskq_cli("job", "cli_app:app", "--state", "cancelled", "--grep", "zzz-none")
    assert code == 0 and "no jobs" in out, out
    code, out = taskq_cli("job", "cli_app:app", "-q", "default", "--state", "ready", "--grep", "x")
    assert code == 2, out


def test_dashboard_job_page_shows_due_and_logs_escaped_and_runs_now(url: str) -> None:
    app = taskq.TaskQ(url)

    @app.task
    def noop() -> None: ...

    job = noop.options(delay=600).delay()
    app.broker.append_logs("default", {job.id: ["1700000000000 INFO <script>alert(1)</script>"]})
    client = TestClient(create_app(app))
    html = client.get(f"/jobs/{job.id}").text
    assert 'id="due"' in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "run-now" in html
    token = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    assert client.post(f"/jobs/{job.id}/run-now", data={"csrf": "wrong"}).status_code == 403
    assert job.status() is taskq.Status.SCHEDULED
    done = client.post(f"/jobs/{job.id}/run-now", data={"csrf": token, "queue": "default"})
    assert done.status_code == 200 and "run-now" in done.text and job.status() is taskq.Status.QUEUED
    read_only = TestClient(create_app(app, read_only=True))
    assert "run-now" not in read_only.get(f"/jobs/{job.id}").text
