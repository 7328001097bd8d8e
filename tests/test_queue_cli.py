"""Operator commands: `taskq queue APP list|pause Q|resume Q|purge Q --yes` (the pause is held
in Redis, so every worker stops leasing from the queue), and $TASKQ_APP standing in for APP."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner

import taskq
from taskq import cli
from taskq.testing import drain


@pytest.fixture
def runner(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: app)
    return CliRunner()


def test_a_paused_queue_leases_nothing_until_resumed(app: taskq.TaskQ, runner: CliRunner) -> None:
    @app.task
    def noop(i: int) -> int:
        return i

    noop.delay(0)  # the queue is known
    drain(app)
    out = runner.invoke(cli.main, ["queue", "x:app", "pause", "default"])
    assert out.exit_code == 0 and out.output == "paused default\n"
    assert runner.invoke(cli.main, ["queue", "x:app", "pause", "default"]).output == "default was paused already\n"
    worker = taskq.Worker(app, ["default"], concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        jobs = noop.map(range(20))
        time.sleep(1.0)  # a worker that could lease would have run them all by now
        assert {j.status() for j in jobs} == {taskq.Status.QUEUED}
        listed = json.loads(runner.invoke(cli.main, ["queue", "x:app", "list", "--json"]).output)
        assert [(q["queue"], q["ready"], q["paused"]) for q in listed] == [("default", 20, True)]
        status = runner.invoke(cli.main, ["status", "x:app"]).output
        assert "paused" in status
        assert runner.invoke(cli.main, ["queue", "x:app", "resume", "default"]).output == "resumed default\n"
        assert [j.result(timeout=10) for j in jobs] == list(range(20))  # the idle worker woke at once
    finally:
        worker.stop()
        thread.join(10)
    listed = runner.invoke(cli.main, ["queue", "x:app", "list"]).output.splitlines()
    assert listed[0].split() == ["queue", "ready", "scheduled", "reserved", "running", "dead", "state"]
    assert listed[1].split() == ["default", "0", "0", "0", "0", "0", "active"]


def test_purge_cancels_what_has_not_started(app: taskq.TaskQ, runner: CliRunner) -> None:
    @app.task
    def noop(i: int) -> int:
        return i

    ready = noop.map(range(30))
    later = noop.options(delay=600).delay(1)
    keyed = [noop.options(ordering_key="k").delay(i) for i in range(3)]  # two wait behind the first
    refused = runner.invoke(cli.main, ["queue", "x:app", "purge", "default"])
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert ready[0].status() is taskq.Status.QUEUED
    out = runner.invoke(cli.main, ["queue", "x:app", "purge", "default", "--yes"])
    assert out.exit_code == 0 and out.output == "cancelled 34 job(s) of default\n", out.output
    for job in [*ready, later, *keyed]:
        info = job.info()
        assert info.status is taskq.Status.CANCELLED and (info.reason or "").startswith("purged: taskq queue purge")
    assert app.broker.depths("default").ready == 0 and app.broker.depths("default").scheduled == 0
    unknown = runner.invoke(cli.main, ["queue", "x:app", "purge", "nope", "--yes"])
    assert unknown.exit_code == 1 and "unknown queue 'nope'" in unknown.output and "Traceback" not in unknown.output


def test_taskq_app_stands_in_for_app(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> None:
    @app.task
    def noop() -> None: ...

    job = noop.delay()
    loaded: list[str] = []
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: loaded.append(path) or app)
    monkeypatch.setenv("TASKQ_APP", "from.env:app")
    run = CliRunner().invoke
    assert run(cli.main, ["job", job.id]).exit_code == 0
    assert run(cli.main, ["job", job.id, "cancel"]).exit_code == 0
    assert run(cli.main, ["dlq", "list"]).exit_code == 0
    assert run(cli.main, ["queue", "list"]).exit_code == 0
    assert run(cli.main, ["status", "--json"]).exit_code == 0
    assert loaded == ["from.env:app"] * 5
    assert run(cli.main, ["status", "given.here:app", "--json"]).exit_code == 0  # a given APP wins
    assert loaded[-1] == "given.here:app"
    monkeypatch.delenv("TASKQ_APP")
    for args in (["dlq", "list"], ["status"], ["queue", "pause", "default"]):
        missing = run(cli.main, args)
        assert missing.exit_code == 2 and "Missing argument 'APP' (package.module:app), or set $TASKQ_APP" in \
            missing.output, missing.output


def test_pause_and_purge_on_cluster_and_sentinel(deployment_url: str) -> None:
    app = taskq.TaskQ(deployment_url)

    @app.task(queue="q1")
    def one(i: int) -> int:
        return i

    @app.task(queue="q2")
    def two(i: int) -> int:
        return i

    firsts, seconds = one.map(range(5)), two.map(range(5))
    assert app.broker.pause("q1") and not app.broker.pause("q1")
    assert app.broker.paused(["q1", "q2"]) == {"q1"}
    drain(app, ["q2"])  # q2 is not paused: its jobs run
    assert [j.result(timeout=5) for j in seconds] == list(range(5))
    assert {j.status() for j in firsts} == {taskq.Status.QUEUED}
    assert app.broker.empty("q1", "purged: test") == 5
    assert {j.status() for j in firsts} == {taskq.Status.CANCELLED}
    assert app.broker.pause("q1", False) and app.broker.paused(["q1", "q2"]) == set()


def test_taskq_job_lists_a_queues_jobs_by_state(app: taskq.TaskQ, runner: CliRunner) -> None:
    @app.task(retries=0)
    def maybe(i: int) -> int:
        if i < 0:
            raise ValueError("negative")
        return i

    maybe.delay(-1)
    drain(app)
    ready = maybe.map(range(60))
    later = maybe.options(delay=600).delay(7)
    first = runner.invoke(cli.main, ["job", "x:app", "--queue", "default", "--state", "ready", "--json"])
    assert first.exit_code == 0 and [r["id"] for r in json.loads(first.output)] == [j.id for j in ready[:50]]
    second = runner.invoke(cli.main, ["job", "x:app", "--queue", "default", "--state", "ready", "--page", "2"])
    assert second.exit_code == 0 and [line.split()[0] for line in second.output.splitlines()[1:]] == \
        [j.id for j in ready[50:]]
    scheduled = runner.invoke(cli.main, ["job", "x:app", "--queue", "default", "--state", "scheduled"]).output
    assert later.id in scheduled
    dead = runner.invoke(cli.main, ["job", "x:app", "--queue", "default", "--state", "dead"]).output
    assert "retries_exhausted: ValueError: negative" in dead
    assert runner.invoke(cli.main, ["job", "x:app"]).exit_code == 2
    assert runner.invoke(cli.main, ["job", "x:app", "--queue", "default", "--state", "nope"]).exit_code == 2


def test_tables_stay_aligned_with_long_queue_names(app: taskq.TaskQ, runner: CliRunner) -> None:
    long = "q" * 45

    @app.task(queue=long)
    def noop() -> None: ...

    noop.delay()
    status = runner.invoke(cli.main, ["status", "x:app"]).output.split("\n\n")[0].splitlines()
    header, row = status[0], next(line for line in status if line.startswith(long))
    assert row.split()[:6] == [long, "1", "0", "0", "0", "0"]
    assert header.index("ready") + len("ready") == row.index(" 1 ") + 2  # right-aligned under its header
