"""Under `taskq worker -p`: every event reaches its hooks exactly once, in the process that ran
the job (the ledger records the pid), none lost when the worker stops; and a sync job that
ignores job.abort() is killed with its process after abort_grace, the process replaced."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import hookapp
import pytest
from harness import Ledger, Workers, app_at, wait_for

import taskq


class HookWorkers(Workers):
    app = "hookapp:app"


@pytest.fixture
def hook_app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    yield from app_at(hookapp.app, redis_url, monkeypatch)


def test_each_event_reaches_its_hooks_once_in_the_process_that_ran_the_job(
        hook_app: taskq.TaskQ, ledger: Ledger, redis_url: str, tmp_path: Path) -> None:
    jobs = [hookapp.step.delay(i) for i in range(40)]
    pool = HookWorkers(redis_url, ledger.url, tmp_path)
    try:
        sup = pool.start("-p", "2", concurrency=4)
        wait_for(lambda: all(j.status() == "succeeded" for j in jobs), "every job to succeed", every=0.1)
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.log()
    finally:
        pool.cleanup()
    entries = [json.loads(e) for e in ledger.client.lrange("ledger", 0, -1)]
    seen = Counter((e["event"], e["key"], e["run"]) for e in entries)
    ids = {j.id for j in jobs}
    retried = {j.id for i, j in enumerate(jobs) if i % 5 == 0}
    assert all(n == 1 for n in seen.values()), [k for k, n in seen.items() if n > 1]  # exactly once
    assert {k for (ev, k, _) in seen if ev == "hook-succeeded"} == ids
    assert {k for (ev, k, _) in seen if ev == "hook-retrying"} == retried
    assert sum(1 for (ev, _, _) in seen if ev == "hook-started") == len(ids) + len(retried)
    pids = {e["pid"] for e in entries}
    assert pids and sup.pid not in pids  # the children ran the hooks, where the events happened


def test_a_sync_job_that_ignores_abort_is_killed_after_the_grace(
        hook_app: taskq.TaskQ, ledger: Ledger, redis_url: str, tmp_path: Path) -> None:
    job = hookapp.stuck.delay()
    pool = HookWorkers(redis_url, ledger.url, tmp_path)
    try:
        sup = pool.start("-p", "1", concurrency=2, lease=0.9)
        wait_for(lambda: job.status() == "running", "the stuck job to start")
        assert job.abort("the test")
        wait_for(lambda: job.status() == "cancelled", "the job to end cancelled")
        assert job.info().reason == "aborted: the test" and job.info().attempt == 1  # never retried
        after = hookapp.step.delay(1)  # the supervisor's new child runs the next job
        wait_for(lambda: after.status() == "succeeded", "the replacement child to run a job")
        sup.signal(signal.SIGTERM)
        assert sup.wait() == 0, sup.log()
        assert "aborted job still running, killing this worker process" in sup.log()
    finally:
        pool.cleanup()
