"""A failing job's traceback: stored and logged once per failed attempt (warning for a retry, error
for a dead job) in structlog's `exception` field, with taskq's own frames cut; --no-log-tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from logging_state import reset_logging

import taskq
from taskq import events
from taskq.events import EventKind, JobEvent
from taskq.log import configure, get_logger
from taskq.testing import drain

HERE = Path(__file__).parent
RUNNER = ("taskq/execute.py", "taskq/hooks.py", "taskq/worker/pool.py")


@pytest.fixture
def logs_app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> taskq.TaskQ:
    import logs_app

    monkeypatch.setattr(logs_app.app, "url", redis_url)
    monkeypatch.setattr(logs_app.app, "_broker", None)
    return logs_app.app


def run_worker(redis_url: str, *options: str) -> str:
    """A burst worker over logs_app; its stderr."""
    env = {**os.environ, "TASKQ_TEST_URL": redis_url, "PYTHONPATH": str(HERE)}
    done = subprocess.run([sys.executable, "-m", "taskq.cli", "worker", "logs_app:app", "--burst", *options],
                          cwd=HERE, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stderr


def json_lines(text: str, job_id: str) -> dict[str, dict[str, Any]]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return {e["event"]: e for e in lines if e.get("job_id") == job_id}


def assert_users_traceback(text: str, n: int) -> None:
    assert text.startswith("Traceback (most recent call last):"), text
    for frame in ("in audited", "in boom", "in charge", 'raise ValueError(f"boom {n}")'):
        assert frame in text, text
    assert text.rstrip().endswith(f"ValueError: boom {n}")
    assert not any(runner in text for runner in RUNNER), text


def test_the_stored_traceback_shows_the_users_frames_and_none_of_taskqs(logs_app: taskq.TaskQ) -> None:
    import logs_app as module

    job, chained = module.boom.delay(3), module.wrapped.delay(4)
    drain(logs_app)
    error = job.info().error
    assert error is not None
    assert_users_traceback(error, 3)
    text = chained.info().error or ""
    assert "in charge" in text and "The above exception was the direct cause" in text and "in wrapped" in text
    assert text.rstrip().endswith("RuntimeError: could not charge")
    assert not any(runner in text for runner in RUNNER), text


def test_the_json_log_has_each_failed_attempts_whole_traceback(logs_app: taskq.TaskQ) -> None:
    import logs_app as module

    job = module.boom.delay(3)
    err = run_worker(logs_app.url, "--log-format", "json")
    mine = json_lines(err, job.id)
    retrying, dead = mine["job retrying"], mine["job dead"]
    assert (retrying["level"], retrying["attempt"], retrying["error"]) == ("warning", 1, "ValueError: boom 3")
    assert (dead["level"], dead["attempt"]) == ("error", 2)
    assert_users_traceback(retrying["exception"], 3)
    assert_users_traceback(dead["exception"], 3)
    assert err.count("boom {n}") == 2  # once per failed attempt
    assert job.info().error == dead["exception"]  # what `taskq job` shows


def test_taskqs_own_signals_log_no_traceback(logs_app: taskq.TaskQ) -> None:
    """Retry and Reject are raised on purpose: their lines say what happened, the traceback is
    only stored."""
    import logs_app as module

    again, refuse = module.again.delay(), module.refuse.delay()
    err = run_worker(logs_app.url, "--log-format", "json")
    retried, refused = json_lines(err, again.id), json_lines(err, refuse.id)
    assert retried["job retrying"]["error"].startswith("Retry") and "exception" not in retried["job retrying"]
    assert "exception" not in retried["job dead"]
    assert refused["job dead"]["reason"] == "rejected: not for us" and "exception" not in refused["job dead"]
    assert "Traceback" in (refuse.info().error or "")  # stored all the same


def test_no_log_tracebacks_leaves_them_out(logs_app: taskq.TaskQ) -> None:
    import logs_app as module

    job = module.boom.delay(5)
    err = run_worker(logs_app.url, "--log-format", "json", "--no-log-tracebacks")
    mine = json_lines(err, job.id)
    assert mine["job retrying"]["error"] == "ValueError: boom 5" and mine["job dead"]["level"] == "error"
    assert "exception" not in mine["job retrying"] and "exception" not in mine["job dead"]
    assert "Traceback" not in err
    assert "Traceback" in (job.info().error or "")  # still stored


def test_the_key_value_log_has_it_too(logs_app: taskq.TaskQ) -> None:
    """--log-format console into a file or a collector: logfmt, the traceback escaped on the line."""
    import logs_app as module

    module.boom.delay(6)
    err = run_worker(logs_app.url)
    [line] = [line for line in err.splitlines() if 'event="job dead"' in line]
    assert 'exception="Traceback (most recent call last):\\n' in line and "in charge" in line
    assert "ValueError: boom 6" in line and "execute.py" not in line


@pytest.fixture
def terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A person's terminal: the console renderer, with taskq's worker logger built afresh."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(events, "log", get_logger("taskq.worker"))
    try:
        configure("info", "console")
        yield capsys
    finally:
        reset_logging()


def test_the_console_shows_the_traceback_under_the_line(terminal: pytest.CaptureFixture[str]) -> None:
    tb = 'Traceback (most recent call last):\n  File "shop.py", line 9, in charge\nValueError: boom 3\n'
    events.log_event(JobEvent(EventKind.DEAD, "j1", "boom", "default", 2, reason="retries_exhausted",
                              traceback=tb))
    events.log_event(JobEvent(EventKind.RETRYING, "j2", "boom", "default", 1, error="ValueError: boom 3",
                              traceback=tb), tracebacks=False)
    err = terminal.readouterr().err
    assert '  File "shop.py", line 9, in charge\n' in err and err.count("Traceback") == 1


def test_the_switch_reaches_the_processes_of_a_supervisor() -> None:
    from taskq.cli.options import WorkerOptions

    off = WorkerOptions(log_tracebacks=False).child_argv("app:app", 1, "w")
    assert "--no-log-tracebacks" in off and not any(a.startswith("--log-tracebacks") for a in off)
    assert not any("tracebacks" in a for a in WorkerOptions().child_argv("app:app", 1, "w"))  # the default
