"""Operator commands for partitions: `taskq partition APP Q list|show P|pause P|resume P|backoff P
SECONDS|limit P [--max-running N] [--rate-limit R]` (what each changes holds in Redis, so a
fetch by any worker sees it), `taskq status` naming the largest backlog, `taskq job` the partition."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

import taskq
from taskq import cli
from taskq.testing import drain


@pytest.fixture
def runner(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: app)
    return CliRunner()


def part(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli.main, ["partition", "x:app", "default", *args])


def fair_app(app: taskq.TaskQ) -> taskq.Task[[int], int]:
    """A fair queue, every partition at most 2 running and 10 starts a second: 5 jobs of 'big',
    1 of 'small'."""
    app.queue("default", partition_max_running=2, partition_rate_limit="10/s", fair=True)

    @app.task
    def noop(i: int) -> int:
        return i

    noop.options(partition="big").map(range(5))
    noop.options(partition="small").delay(0)
    return noop


def started(app: taskq.TaskQ) -> list[str | None]:
    """The partitions of the jobs one fetch leases now (as any worker would)."""
    fetched = app.broker.fetch("default", 20, 0, "w-test").deliveries
    return sorted(str(app.job(d.id).info().partition) for d in fetched)


def test_list_puts_the_largest_backlog_first_with_its_limits(app: taskq.TaskQ, runner: CliRunner) -> None:
    noop = fair_app(app)
    listed = json.loads(part(runner, "list", "--json").output)
    assert [(p["name"], p["ready"], p["running"], p["max_running"], p["rate_limit"], p["paused"], p["own_limits"])
            for p in listed] == [("big", 5, 0, 2, "10/s", False, False), ("small", 1, 0, 2, "10/s", False, False)]
    assert [p["name"] for p in json.loads(part(runner, "list", "--json", "--limit", "1").output)] == ["big"]
    lines = part(runner, "list").output.splitlines()
    assert lines[0].split() == ["partition", "ready", "running", "max", "running", "rate", "limit", "state", "limits"]
    assert lines[1].split() == ["big", "5", "0", "2", "10/s", "queue's"]
    shown = part(runner, "show", "small")
    assert shown.exit_code == 0 and "ready        1" in shown.output
    assert "limits       the queue's: max_running 2, rate_limit 10/s" in shown.output
    assert json.loads(part(runner, "show", "nobody", "--json").output)["ready"] == 0  # no jobs: nothing held
    noop.delay(9)  # no partition: one of its own in a fair queue, named ''
    assert part(runner, "list").output.splitlines()[-1].split()[:3] == ["(no", "partition)", "1"]


def test_pause_and_resume_hold_for_every_worker(app: taskq.TaskQ, runner: CliRunner) -> None:
    fair_app(app)
    out = part(runner, "pause", "small")
    assert out.exit_code == 0 and out.output == "paused small of default\n"
    assert part(runner, "pause", "small").output == "small of default was paused already\n"
    assert started(app) == ["big", "big"]  # big's cap; small's job waits while it is paused
    listed = json.loads(part(runner, "list", "--json").output)
    assert [(p["name"], p["paused"], p["blocked"]) for p in listed] == [("big", False, "at its cap"),
                                                                     ("small", True, "paused")]
    assert "paused" in part(runner, "list").output.splitlines()[2]
    assert part(runner, "resume", "small").output == "resumed small of default\n"
    assert part(runner, "resume", "small").output == "small of default was not paused\n"
    assert started(app) == ["small"]


def test_backoff_holds_a_partition_until_it_ends(app: taskq.TaskQ, runner: CliRunner) -> None:
    fair_app(app)
    out = part(runner, "backoff", "small", "600")
    assert out.exit_code == 0 and out.output == "small of default: backing off for 600 s\n"
    shown = json.loads(part(runner, "show", "small", "--json").output)
    assert shown["blocked"] == "backing off" and shown["paused_until"].endswith("Z") and not shown["paused"]
    assert "backing off until " + shown["paused_until"] in part(runner, "show", "small").output
    assert started(app) == ["big", "big"]
    assert part(runner, "backoff", "small", "0").output == "small of default: backoff ended\n"
    assert started(app) == ["small"]


def test_limit_gives_a_partition_its_own_and_then_the_queues_again(app: taskq.TaskQ, runner: CliRunner) -> None:
    fair_app(app)
    out = part(runner, "limit", "big", "--max-running", "4", "--rate-limit", "100/m")
    assert out.exit_code == 0 and out.output == "big of default: own limits max_running 4, rate_limit 100/m\n"
    shown = json.loads(part(runner, "show", "big", "--json").output)
    assert (shown["max_running"], shown["rate_limit"], shown["own_limits"]) == (4, "100/m", True)
    assert started(app) == ["big", "big", "big", "big", "small"]
    assert part(runner, "limit", "big").output == "big of default: the queue's limits again\n"
    shown = json.loads(part(runner, "show", "big", "--json").output)
    assert (shown["max_running"], shown["rate_limit"], shown["own_limits"]) == (2, "10/s", False)


def test_bad_input_is_one_line(app: taskq.TaskQ, runner: CliRunner) -> None:
    fair_app(app)
    unknown = runner.invoke(cli.main, ["partition", "x:app", "nope", "list"])
    assert unknown.exit_code == 1 and unknown.output == "Error: unknown queue 'nope' (known: default)\n"
    for args in (["limit", "big", "--max-running", "0"], ["backoff", "big", "-1"], ["backoff", "big", "soon"],
                 ["show"], ["frobnicate", "big"]):
        assert part(runner, *args).exit_code == 2, args
    for args, said in ((["limit", "big", "--rate-limit", "lots"], "rate_limit must look like"),
                       (["pause", ""], "partition must be a non-empty string"),
                       (["show", "x" * 201], "partition must be a non-empty string")):
        out = part(runner, *args)
        assert out.exit_code == 1 and said in out.output and len(out.output.splitlines()) == 1, out.output
    assert json.loads(part(runner, "show", "big", "--json").output)["own_limits"] is False  # nothing was set


def test_a_queue_named_like_a_module_with_taskq_app_set(app: taskq.TaskQ, runner: CliRunner,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    @app.task(queue="email")
    def send(i: int) -> int:
        return i

    send.options(partition="acme").delay(1)
    monkeypatch.setenv("TASKQ_APP", "from.env:app")
    out = runner.invoke(cli.main, ["partition", "email", "pause", "acme"])  # `email` is also a stdlib module
    assert out.exit_code == 0 and out.output == "paused acme of email\n", out.output
    assert runner.invoke(cli.main, ["partition", "x:app", "email", "resume", "acme"]).exit_code == 0


def test_no_partitions_says_so(app: taskq.TaskQ, runner: CliRunner) -> None:
    @app.task
    def noop() -> None: ...

    noop.delay()
    drain(app)
    assert part(runner, "list").output == "no partition has jobs waiting, is paused or backs off\n"
    assert json.loads(part(runner, "list", "--json").output) == []


def test_status_names_the_largest_backlog_of_a_queue_with_partitions(app: taskq.TaskQ, runner: CliRunner) -> None:
    fair_app(app)

    @app.task(queue="plain")
    def other() -> None: ...

    other.delay()
    queues = json.loads(runner.invoke(cli.main, ["status", "x:app", "--json"]).output)["queues"]
    assert (queues["default"]["partitions"], queues["default"]["largest_partition"]) == (2, {"name": "big", "ready": 5})
    assert (queues["plain"]["partitions"], queues["plain"]["largest_partition"]) == (0, None)
    lines = runner.invoke(cli.main, ["status", "x:app"]).output.splitlines()
    said = [line for line in lines if line.startswith("partitions of")]
    assert said == ["partitions of default: 2 with jobs waiting, the largest backlog: big (5 ready)"]


def test_taskq_job_shows_the_partition(app: taskq.TaskQ, runner: CliRunner) -> None:
    @app.task
    def noop(i: int) -> int:
        return i

    tenant, plain = noop.options(partition="tenant:7").delay(1), noop.delay(2)
    shown = runner.invoke(cli.main, ["job", "x:app", tenant.id])
    assert shown.exit_code == 0 and "partition  tenant:7" in shown.output.splitlines()
    assert json.loads(runner.invoke(cli.main, ["job", "x:app", tenant.id, "--json"]).output)["partition"] == "tenant:7"
    drain(app)
    assert json.loads(runner.invoke(cli.main, ["job", "x:app", tenant.id, "--json"]).output)["partition"] == "tenant:7"
    assert json.loads(runner.invoke(cli.main, ["job", "x:app", plain.id, "--json"]).output)["partition"] is None
    assert "partition" not in runner.invoke(cli.main, ["job", "x:app", plain.id]).output
