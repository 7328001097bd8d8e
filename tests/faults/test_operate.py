"""Operating taskq from the command line, on a prepared Redis: ready, scheduled, running (with
progress) and dead jobs, two live workers. Every command's output is checked field by field,
human and --json; replay runs dead jobs again; every bad input gets its line and exit code."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import faultapp
import pytest
from click.testing import CliRunner
from harness import Ledger, WorkerProc, Workers, wait_for

import taskq
from taskq.cli import main

APP = "faultapp:app"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")


def cli(app: taskq.TaskQ, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--url", app.url], prog_name="taskq")
    return result.exit_code, result.output


def cli_json(app: taskq.TaskQ, *args: str) -> Any:
    code, out = cli(app, *args, "--json")
    assert code == 0, out
    return json.loads(out)


@dataclass
class Prepared:
    """The jobs of the prepared Redis, by role."""

    parked: list[taskq.Job[Any]]  # ready in queue "parked" (no worker consumes it)
    later: taskq.Job[Any]  # scheduled in "parked", due in 10 minutes
    running: taskq.Job[Any]  # running in "default", progress 0.5 "halfway"
    dead: list[taskq.Job[Any]]  # dead in "default" (flaky: their first run fails)
    done: taskq.Job[Any]  # succeeded in "default"
    workers: list[WorkerProc]


@pytest.fixture
def prepared(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> Iterator[Prepared]:
    first = workers.start("-q", "default", lease=1.0, concurrency=2)
    second = workers.start("-q", "default", lease=1.0, concurrency=3)
    parked = [faultapp.add.options(queue="parked").delay(i, i) for i in range(3)]
    later = faultapp.add.options(queue="parked", delay=600).delay(9, 9)
    dead = [faultapp.flaky.delay("a"), faultapp.flaky.delay("b")]
    done = faultapp.add.delay(2, 3)
    running = faultapp.step.delay("slow", 60.0)
    wait_for(lambda: all(j.status() == "dead" for j in dead) and done.status() == "succeeded"
             and "slow" in ledger.runs(), "the prepared state")
    wait_for(lambda: len(app.broker.live_workers()) == 2, "both workers to register")
    yield Prepared(parked, later, running, dead, done, [first, second])
    for w in (first, second):
        w.signal(signal.SIGKILL)  # the 60 s job would hold a graceful stop


def test_status_human_and_json(app: taskq.TaskQ, prepared: Prepared) -> None:
    data = cli_json(app, "status", APP)
    parked, default = data["queues"]["parked"], data["queues"]["default"]
    assert {k: parked[k] for k in ("ready", "scheduled", "running", "dead")} == \
        {"ready": 3, "scheduled": 1, "running": 0, "dead": 0}
    assert {k: default[k] for k in ("ready", "scheduled", "running", "dead")} == \
        {"ready": 0, "scheduled": 0, "running": 1, "dead": 2}
    assert 0 <= parked["oldest_ready_age_s"] < 120 and default["oldest_ready_age_s"] is None
    [running] = data["running"]
    assert running["id"] == prepared.running.id and running["queue"] == "default"
    assert running["task"] == "step" and running["attempt"] == 1 and running["running_s"] >= 0
    assert running["progress"]["fraction"] == 0.5 and running["progress"]["text"] == "halfway"
    assert ISO.match(running["progress"]["at"])
    assert {w["pid"] for w in data["workers"]} == {w.pid for w in prepared.workers}
    assert running["worker"] in {w["id"] for w in data["workers"]}
    assert sorted(w["concurrency"] for w in data["workers"]) == [2, 3]
    assert all(w["queues"] == ["default"] and 0 <= w["heartbeat_age_s"] < 5 for w in data["workers"])
    assert sum(w["processed"] for w in data["workers"]) >= 0  # counts are refreshed with each heartbeat

    code, out = cli(app, "status", APP)
    assert code == 0, out
    rows = {line.split()[0]: line.split()[1:] for line in out.split("\n\n")[0].splitlines()[1:]}
    assert rows["parked"][:5] == ["3", "1", "0", "0", "0"] and re.match(r"^(\d+\.\ds|\d+m\d\ds)$", rows["parked"][5])
    assert rows["default"] == ["0", "0", "0", "1", "2", "-"]
    [line] = [line for line in out.splitlines() if line.startswith(prepared.running.id)]
    assert line.split()[1:4] == ["default", "step", "1"] and line.endswith("[#####-----]  50% halfway")
    assert "live workers: 2" in out
    assert all(f" {w.pid} " in out for w in prepared.workers)


def test_status_watch_refreshes(app: taskq.TaskQ, prepared: Prepared, monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the second refresh ends the watch like Ctrl-C would
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("taskq.cli.time.sleep", sleep)
    code, out = cli(app, "status", APP, "--watch", "--interval", "0.5")
    assert code == 0, out
    assert out.count("live workers: 2") == 2 and sleeps == [0.5, 0.5]


def test_job_human_and_json(app: taskq.TaskQ, prepared: Prepared) -> None:
    view = cli_json(app, "job", APP, prepared.running.id)
    assert view["id"] == prepared.running.id and view["queue"] == "default" and view["task"] == "step"
    assert view["status"] == "running" and view["attempt"] == 1 and view["max_attempts"] == 1
    assert view["args"] == ["slow", 60.0] and view["kwargs"] == {}
    assert ISO.match(view["enqueued"]) and ISO.match(view["started"]) and view["finished"] is None
    assert view["progress"]["fraction"] == 0.5 and view["progress"]["text"] == "halfway"
    assert "result" not in view and view["error"] is None

    view = cli_json(app, "job", APP, prepared.done.id)
    assert view["status"] == "succeeded" and view["result"] == 5 and ISO.match(view["finished"])

    code, out = cli(app, "job", APP, prepared.dead[0].id)
    assert code == 0, out
    fields = dict(line.split(None, 1) for line in out.split("\nerror:")[0].splitlines())
    assert fields["status"] == "dead" and fields["task"] == "flaky" and fields["attempt"] == "1 of 1"
    assert fields["args"] == '["a"]' and fields["queue"] == "default"
    assert fields["reason"] == "retries_exhausted: ValueError: first run of a fails (attempt 1 of 1)"
    assert "Traceback (most recent call last)" in out and "ValueError: first run of a fails" in out

    code, out = cli(app, "job", APP, prepared.later.id, "--queue", "parked")
    assert code == 0 and "status     scheduled" in out


def test_dlq_list_show_replay_purge(app: taskq.TaskQ, prepared: Prepared, ledger: Ledger) -> None:
    rows = cli_json(app, "dlq", APP, "list")
    keys = {j.id: key for j, key in zip(prepared.dead, ["a", "b"], strict=True)}
    assert sorted(r["id"] for r in rows) == sorted(keys)
    assert [r["dead_since"] for r in rows] == sorted((r["dead_since"] for r in rows), reverse=True)  # newest first
    for row in rows:
        assert row["queue"] == "default" and row["task"] == "flaky" and row["attempts"] == 1
        assert ISO.match(row["dead_since"])
        assert row["reason"] == f"retries_exhausted: ValueError: first run of {keys[row['id']]} fails (attempt 1 of 1)"
    assert cli_json(app, "dlq", APP, "list", "--limit", "1") == rows[:1]
    assert cli_json(app, "dlq", APP, "list", "--queue", "parked") == []

    code, out = cli(app, "dlq", APP, "list")
    assert code == 0, out
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["id", "queue", "task", "tries"]
    assert [line.split()[:4] for line in lines] == [[r["id"], "default", "flaky", "1"] for r in rows]
    assert lines[0].endswith(rows[0]["reason"])

    shown = cli_json(app, "dlq", APP, "show", prepared.dead[0].id)
    assert shown["args"] == ["a"] and shown["status"] == "dead"
    assert "Traceback" in shown["error"] and "ValueError: first run of a fails" in shown["error"]
    code, out = cli(app, "dlq", APP, "show", prepared.dead[0].id)
    assert code == 0 and "Traceback (most recent call last)" in out

    code, out = cli(app, "dlq", APP, "replay", "--id", prepared.dead[0].id)
    assert code == 0 and f"replayed 1 job ({prepared.dead[0].id}, queue default)" in out
    assert prepared.dead[0].result(timeout=30) == "a"  # runs again, and this time succeeds
    code, out = cli(app, "dlq", APP, "replay", "--all")
    assert code == 0 and "replayed 1 job(s)" in out
    assert prepared.dead[1].result(timeout=30) == "b"
    assert ledger.runs()["a"] == 2 and ledger.runs()["b"] == 2
    assert cli_json(app, "dlq", APP, "list") == []

    gone = faultapp.flaky.delay("c")
    wait_for(lambda: gone.status() == "dead", "a job to purge")
    code, out = cli(app, "dlq", APP, "purge", "--all")
    assert code == 2 and "add --yes to confirm" in out
    assert gone.status() == "dead"
    code, out = cli(app, "dlq", APP, "purge", "--all", "--yes")
    assert code == 0 and "purged 1 job(s)" in out
    with pytest.raises(taskq.JobNotFound):
        gone.status()
    assert app.broker.depths("default").dead == 0


def test_replay_all_shows_progress_and_resets_attempts(app: taskq.TaskQ, workers: Workers,
                                                       ledger: Ledger) -> None:
    jobs = [faultapp.retry_now.delay(f"r{i}") for i in range(5)]  # 3 runs each, then dead
    worker = workers.start(lease=1.0, concurrency=4)
    wait_for(lambda: all(j.status() == "dead" for j in jobs), "the jobs to exhaust their retries")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    result = CliRunner().invoke(main, ["dlq", APP, "replay", "--all", "--url", app.url])
    assert result.exit_code == 0, result.output
    assert "replayed 5 job(s)" in result.stdout and "replaying default" in result.stderr
    assert all(j.status() == "queued" for j in jobs)
    view = cli_json(app, "job", APP, jobs[0].id)
    assert view["attempt"] == 1 and view["max_attempts"] == 3 and view["reason"] is None


@pytest.mark.parametrize(("args", "code", "message"), [
    (["job", APP, "nope"], 1, "Error: no job nope in any queue"),
    (["job", APP, "nope", "--queue", "default"], 1, "Error: no job nope in queue 'default'"),
    (["dlq", APP, "list", "--queue", "nosuch"], 1, "Error: unknown queue 'nosuch'"),
    (["dlq", APP, "show", "nope"], 1, "Error: no job nope in any queue"),
    (["dlq", APP, "replay"], 2, "give exactly one of --id ID or --all"),
    (["dlq", APP, "replay", "--id", "x", "--all"], 2, "give exactly one of --id ID or --all"),
    (["dlq", APP, "replay", "--id", "nope"], 1, "Error: no job nope in any queue"),
    (["dlq", APP, "purge", "--all"], 2, "--all deletes every dead job for good; add --yes to confirm"),
    (["dlq", APP, "purge", "--id", "nope"], 1, "Error: no job nope in any queue"),
    (["enqueue", APP, "nosuch"], 1, "Error: no task named 'nosuch'"),
    (["enqueue", APP, "add", "--args", "[1,"], 2, "Invalid value for '--args': not JSON"),
    (["enqueue", APP, "add", "--kwargs", "{x}"], 2, "Invalid value for '--kwargs': not JSON"),
    (["enqueue", APP, "add", "--args", "{}"], 2, "Invalid value for '--args': must be a JSON list"),
    (["enqueue", APP, "add", "--args", "[1]"], 1, "missing a required argument: 'y'"),
    (["enqueue", APP, "add", "--args", "[1, 2]", "--kwargs", '{"z": 3}'], 1, "unexpected keyword argument 'z'"),
    (["enqueue", APP, "add", "--args", "[1, 2, 3]"], 1, "too many positional arguments"),
])
def test_bad_input(app: taskq.TaskQ, args: list[str], code: int, message: str) -> None:
    faultapp.add.options(queue="default").delay(0, 0)  # "default" is a known queue
    before = app.broker.depths("default")
    got, out = cli(app, *args)
    assert got == code, out
    assert message in out and "Traceback" not in out
    assert len(out.strip().splitlines()) <= 4  # one line (click puts usage lines above usage errors)
    assert app.broker.depths("default") == before  # nothing enqueued, replayed or purged


def test_a_dead_job_not_in_the_dlq_is_refused(app: taskq.TaskQ) -> None:
    job = faultapp.add.delay(1, 1)
    code, out = cli(app, "dlq", APP, "replay", "--id", job.id)
    assert code == 1 and f"job {job.id} in queue 'default' is queued, not in the dead-letter list" in out
    assert job.status() == "queued"


def test_one_json_log_line_per_job_event(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    """`--log-format json --log-level debug`: started, succeeded, retrying and dead lines, each with
    job id, task, queue, attempt and (once it ran) duration_ms; failures carry the exception."""
    worker = workers.start("--log-format", "json", "--log-level", "debug", concurrency=2)
    ok, failing = faultapp.add.delay(1, 2), faultapp.retry_now.delay("logged")  # 3 runs, then dead
    wait_for(lambda: ok.status() == "succeeded" and failing.status() == "dead", "the jobs to end")
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    assert len(lines) == len(worker.log().strip().splitlines())  # every line is JSON
    # taskq's own lines (stdlib lines logged while a job runs carry its job_id too, and a "logger")
    mine = [e for e in lines if e.get("job_id") in (ok.id, failing.id) and "logger" not in e]
    events = [(e["event"], e["job_id"], e["attempt"]) for e in mine]
    assert sorted(events) == sorted([
        ("job started", ok.id, 1), ("job succeeded", ok.id, 1),
        ("job started", failing.id, 1), ("job retrying", failing.id, 1),
        ("job started", failing.id, 2), ("job retrying", failing.id, 2),
        ("job started", failing.id, 3), ("job dead", failing.id, 3),
    ])
    for e in mine:
        assert e["queue"] == "default" and e["task"] == ("add" if e["job_id"] == ok.id else "retry_now")
        assert e["level"] in ("debug", "info", "warning", "error") and e["timestamp"].endswith("Z")
        if e["event"] != "job started":
            assert e["duration_ms"] >= 0
    assert all(e["error"] == "Retry: retry requested (delay=0)" for e in mine if e["event"] == "job retrying")
    [dead] = [e for e in mine if e["event"] == "job dead"]
    assert dead["reason"].startswith("retries_exhausted: Retry")
