"""The real `taskq` command on bad input: exit 1 with one line (no traceback) for user
mistakes and an unreachable Redis, exit 2 for usage errors (click)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from harness import HERE, wait_for
from redis_server import RedisServer, free_port

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
    (["worker", "faultapp:no_such_app"], 1, "module 'faultapp' has no attribute 'no_such_app'"),
    (["worker", "faultapp:add"], 1, "'faultapp:add' is not a taskq.TaskQ (found Task)"),
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


@pytest.fixture
def password_redis() -> Iterator[RedisServer]:
    server = RedisServer(password="s3cret-pw")
    yield server
    server.stop()


def test_a_wrong_password_is_an_auth_error_and_no_password_is_printed(password_redis: RedisServer) -> None:
    wrong = f"redis://:not-it@127.0.0.1:{password_redis.port}/0"
    done = taskq_cli("status", "faultapp:app", "--url", wrong, url=wrong)
    assert done.returncode == 1, done.stderr
    assert "refused the credentials" in done.stderr and "cannot reach" not in done.stderr
    assert "not-it" not in done.stderr and ":***@" in done.stderr
    query = f"redis://127.0.0.1:{password_redis.port}/0?password=wrong-pw"
    done = taskq_cli("enqueue", "faultapp:app", "add", "--args", "[1, 2]", "--url", query, url=query)
    assert done.returncode == 1 and "refused the credentials" in done.stderr and "wrong-pw" not in done.stderr


def test_the_worker_started_line_never_shows_a_password(password_redis: RedisServer) -> None:
    url = f"redis://127.0.0.1:{password_redis.port}/0?password=s3cret-pw"
    env = {**os.environ, "PYTHONPATH": str(HERE), "TASKQ_FAULT_URL": url, "TASKQ_FAULT_LEDGER": url}
    proc = subprocess.Popen([sys.executable, "-m", "taskq.cli", "worker", "faultapp:app", "--url", url],
                            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "worker started" in line, line
        assert "s3cret-pw" not in line and "password=***" in line
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "s3cret-pw" not in out


def test_status_watch_rides_out_a_redis_restart(tmp_path: object) -> None:
    """`taskq status --watch` says "Redis unreachable, retrying" while Redis is down (it does not
    exit), shows the queues again once Redis is back, and stops at Ctrl-C with exit code 0."""
    server = RedisServer()
    out = open(os.path.join(str(tmp_path), "watch.txt"), "w+b")  # noqa: SIM115 - read while it grows
    proc = subprocess.Popen([sys.executable, "-m", "taskq.cli", "status", "faultapp:app", "--watch", "--interval",
                             "0.2", "--url", server.url], cwd=HERE, stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(HERE)})

    def screen() -> str:
        out.seek(0)
        return out.read().decode(errors="replace")

    try:
        wait_for(lambda: "taskq status  20" in screen() and "queue" in screen(), "the first screen")
        server.kill()
        wait_for(lambda: "Redis unreachable, retrying" in screen(), "the outage banner")
        assert proc.poll() is None  # still watching
        seen = len(screen())
        server.start()
        wait_for(lambda: "queue" in screen()[seen:] and "ready" in screen()[seen:], "the screen after the restart")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, screen()
        assert "Traceback" not in screen()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.stop()
        out.close()
