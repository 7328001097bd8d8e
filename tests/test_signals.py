"""Ctrl-C twice: the worker exits at once; the abandoned job comes back through its lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskq.testing import drain

HERE = Path(__file__).parent


def test_second_signal_exits_at_once_and_the_lease_brings_the_job_back(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    env = {**os.environ, "TASKQ_TEST_URL": redis_url, "PYTHONPATH": str(HERE)}
    job = cli_app.sleepy.delay(30)
    proc = subprocess.Popen([sys.executable, "-m", "taskq.cli", "worker", "cli_app:app", "--grace", "60"],
                            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while job.status() != "running":
            assert time.monotonic() < deadline, "worker never started the job"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert proc.poll() is None  # the first signal waits for the 30 s job (grace 60 s)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out
    assert b"second signal, exiting now" in out
    assert job.status() == "running"  # still leased by the dead worker
    # the lease lapses (2 s) and a new worker runs it; make it quick this time
    monkeypatch.setattr(cli_app.app.tasks["sleepy"], "fn", lambda seconds: seconds)
    drain(cli_app.app, timeout=30)
    assert job.result(timeout=5) == 30
