"""The real `taskq` command on bad input: exit 1 with one line (no traceback) for user
mistakes and an unreachable Redis, exit 2 for usage errors (click)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from harness import HERE
from redis_server import free_port

Case = tuple[list[str], int, str]


def taskq_cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(HERE), "TASKQ_FAULT_URL": url, "TASKQ_FAULT_LEDGER": url}
    env.pop("TASKQ_URL", None)
    return subprocess.run([sys.executable, "-m", "taskq.cli", *args], cwd=HERE, env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def _nowhere() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(("args", "code", "message"), [
    (["worker", "no.such.module:app"], 1, "cannot import 'no.such.module'"),
    (["worker", "faultapp:no_such_app"], 1, "is not a taskq.TaskQ"),
    (["worker", "faultapp:app", "--bogus"], 2, "No such option"),
    (["worker", "faultapp:app", "-c", "zero"], 2, "Invalid value"),
    (["worker", "faultapp:app", "--url", "NOWHERE"], 1, "cannot reach Redis at redis://127.0.0.1:"),
    (["worker", "faultapp:app", "--url", "ftp://example.invalid/"], 1, "unsupported broker URL"),
    (["enqueue", "faultapp:app", "unknown_task"], 1, "no task named 'unknown_task'"),
    (["enqueue", "faultapp:app", "add", "--args", "[1, 2]", "--url", "NOWHERE"], 1, "cannot reach Redis at"),
    (["status", "faultapp:app", "--url", "NOWHERE"], 1, "cannot reach Redis at"),
    (["dlq", "faultapp:app", "list", "--url", "NOWHERE"], 1, "cannot reach Redis at"),
])
def test_bad_input_exits_with_one_line_and_no_traceback(redis_url: str, args: list[str], code: int,
                                                        message: str) -> None:
    args = [_nowhere() if a == "NOWHERE" else a for a in args]
    done = taskq_cli(*args, url=redis_url)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    if code == 1:
        assert done.stderr.strip().count("\n") == 0, done.stderr  # exactly one line
        assert done.stderr.startswith("Error: ")
