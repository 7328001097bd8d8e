"""The CLI in-process (click's runner): status, dlq, enqueue, and error exits."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import taskq
from taskq.cli import main
from taskq.testing import drain


@pytest.fixture
def cli_app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> taskq.TaskQ:
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    return cli_app.app


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), prog_name="taskq")
    return result.exit_code, result.output


def test_enqueue_then_status_then_worker_burst(cli_app: taskq.TaskQ) -> None:
    code, out = run("enqueue", "cli_app:app", "add", "--args", json.dumps([2, 3]))
    assert code == 0, out
    job_id = out.strip()
    code, out = run("enqueue", "cli_app:app", "send", "--kwargs", json.dumps({"to": "ada"}), "--delay", "60")
    assert code == 0, out
    code, out = run("status", "cli_app:app")
    assert code == 0, out
    table = out.split("\n\n")[0].splitlines()[1:]  # the queue table comes first, then workers
    rows = {line.split()[0]: line.split()[1:] for line in table}
    assert "live workers: 0" in out
    assert rows["default"][:5] == ["1", "0", "0", "0", "0"] and rows["emails"] == ["0", "1", "0", "0", "0", "-"]
    assert rows["default"][5].endswith("s")  # the age of the oldest ready job
    drain(cli_app, ["default"])
    assert cli_app.job(job_id).result(timeout=5) == 5


def test_dlq_list_replay_purge(cli_app: taskq.TaskQ) -> None:
    import cli_app as module

    jobs = [module.fail.delay("first"), module.fail.delay("second")]
    drain(cli_app)
    code, out = run("dlq", "cli_app:app", "list")
    assert code == 0 and len(out.splitlines()) == 3  # the header, then one line per dead job
    assert all("retries_exhausted: RuntimeError" in line for line in out.splitlines()[1:])
    code, out = run("dlq", "cli_app:app", "replay", "--queue", "default", "--id", jobs[0].id)
    assert code == 0 and f"replayed 1 job ({jobs[0].id}, queue default)" in out
    assert jobs[0].status() == "queued"
    code, out = run("dlq", "cli_app:app", "purge", "--id", jobs[1].id)
    assert code == 0 and f"purged 1 job ({jobs[1].id}, queue default)" in out
    with pytest.raises(taskq.JobNotFound):
        jobs[1].status()
    code, out = run("dlq", "cli_app:app", "purge", "--id", "nope")
    assert code == 1 and "no job nope in any queue" in out


@pytest.mark.parametrize(("args", "code", "message"), [
    (["worker", "no_such_module:app"], 1, "cannot import 'no_such_module'"),
    (["worker", "cli_app:add"], 1, "'cli_app:add' is not a taskq.TaskQ (found Task)"),
    (["status", "cli_app:ap"], 1, "module 'cli_app' has no attribute 'ap'"),
    (["worker", "cli_app:app", "--bogus"], 2, "No such option"),
    (["worker", "cli_app:app", "-c", "0"], 2, "Invalid value"),
    (["enqueue", "cli_app:app", "nope"], 1, "no task named 'nope'"),
    (["enqueue", "cli_app:app", "add", "--args", "[1"], 2, "Invalid value for '--args': not JSON"),
    (["enqueue", "cli_app:app", "add", "--kwargs", "[1]"], 2, "Invalid value for '--kwargs': must be a JSON object"),
    (["enqueue", "cli_app:app", "add", "--args", "[1]"], 1, "missing a required argument: 'y'"),
    (["dlq", "cli_app:app", "explode"], 2, "No such command 'explode'"),
])
def test_bad_input_exits_with_one_line(cli_app: taskq.TaskQ, args: list[str], code: int, message: str) -> None:
    got, out = run(*args)
    assert got == code, out
    assert message in out
    assert "Traceback" not in out


@pytest.mark.parametrize(("args", "message"), [
    (["--max-jobs-per-child", "10"], "need -p/--processes"),
    (["--max-memory-per-child", "100"], "need -p/--processes"),
    (["-p", "2", "--burst"], "--burst cannot be combined"),
    (["-p", "-1"], "Invalid value for '-p'"),
    (["-q", "a:b"], "Invalid value for '-q' / '--queue': queue name must be a non-empty string without braces"),
    (["-q", "ok", "-q", "{x}"], "got '{x}'"),
])
def test_worker_process_options_are_checked(cli_app: taskq.TaskQ, args: list[str], message: str) -> None:
    code, out = run("worker", "cli_app:app", *args)
    assert code == 2 and message in out, out


def test_version_names_the_installed_distribution() -> None:
    code, out = run("--version")
    assert code == 0 and out.strip() == f"taskq (taskq-redis), version {taskq.__version__}", out
