"""Graceful SIGTERM (promise 5): a running job finishes once and the worker exits 0;
a job that outlives the grace is given back to ready and a later worker completes it."""

from __future__ import annotations

import signal

import faultapp
from harness import Ledger, Workers, wait_for

import taskq
from taskq.broker.base import Depths


def test_sigterm_lets_the_running_job_finish_once_and_exits_0(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    worker = workers.start(grace=20.0)
    job = faultapp.work.delay("graceful", 1.5)
    wait_for(lambda: ledger.runs()["graceful"] == 1, "the job to start")
    worker.signal(signal.SIGTERM)

    assert worker.wait() == 0, worker.log()
    assert job.status() == "succeeded"  # acknowledged before the worker exited
    assert job.result(timeout=5) == "graceful"
    starts, ends = ledger.starts(), ledger.ends()
    assert [e["pid"] for e in starts] == [worker.pid] and [e["pid"] for e in ends] == [worker.pid]
    assert app.broker.depths("default") == Depths(ready=0, scheduled=0, running=0, dead=0)
    assert "given_back=0" in worker.log()


def test_sigterm_gives_back_a_job_that_outlives_the_grace(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    first = workers.start(grace=0.5)
    job = faultapp.work.delay("too-long", 5.0)
    wait_for(lambda: ledger.runs()["too-long"] == 1, "the job to start")
    first.signal(signal.SIGTERM)

    assert first.wait() == 0, first.log()
    # the worker exited while its run was still sleeping: no end record yet
    assert ledger.ends() == []
    assert job.status() == "queued"  # given back at once, not left to a lease
    assert app.broker.depths("default") == Depths(ready=1, scheduled=0, running=0, dead=0)
    assert "given_back=1" in first.log()

    second = workers.start(grace=20.0)
    assert job.result(timeout=30) == "too-long"
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    assert [e["pid"] for e in ledger.starts()] == [first.pid, second.pid]
    assert [e["pid"] for e in ledger.ends()] == [second.pid]
    assert app.broker.depths("default") == Depths(ready=0, scheduled=0, running=0, dead=0)
