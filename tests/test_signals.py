"""Ctrl-C: the first one says at once how many running jobs it waits for; a second one gives the
unfinished jobs back at once and exits (no waiting for their leases to lapse)."""

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


def test_first_signal_says_what_it_waits_for_and_a_second_gives_the_job_back_at_once(
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
    text = out.decode()
    assert proc.returncode == 1, text
    first = text.index("finishing 1 running job, Ctrl-C again to stop now")
    assert first < text.index("second signal, giving the unfinished jobs back and exiting now")  # not at the end
    assert job.status() == "queued"  # back at once: its lease (2 s) did not have to lapse
    info = job.info()
    assert info.attempt == 1 and info.worker is None  # given back unblamed: no attempt spent
    monkeypatch.setattr(cli_app.app.tasks["sleepy"], "fn", lambda seconds: seconds)
    drain(cli_app.app, timeout=30)
    assert job.result(timeout=5) == 30
