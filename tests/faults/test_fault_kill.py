"""At-least-once under SIGKILL, and no double run of a slow but healthy job (promises 1 and 2).

The evidence is the ledger on a second redis-server, not taskq's own state.
"""

from __future__ import annotations

import signal

import faultapp
import redis
from harness import Ledger, Workers, wait_for

import taskq
from taskq.broker.base import Depths

N_JOBS = 1000


def _leased(broker: redis.Redis, queue: str = "default") -> set[str]:
    return {m.decode() for m in broker.zrange(f"taskq:{{{queue}}}:leases", 0, -1)}


def test_sigkill_mid_batch_every_job_runs_and_only_jobs_in_flight_run_twice(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis
) -> None:
    keys = [f"job-{i:04d}" for i in range(N_JOBS)]
    jobs = [faultapp.work.delay(key, 0.004 + (i % 7) * 0.002) for i, key in enumerate(keys)]
    id_of = {job.id: key for key, job in zip(keys, jobs, strict=True)}

    first = workers.start(lease=2.0, concurrency=8)
    wait_for(lambda: len(ledger.ends()) >= 150, "the first worker to finish some jobs")
    first.kill(broker, ledger.client)

    # frozen state at the kill: no worker is alive and Redis has run all the dead one's commands
    in_flight = {id_of[i] for i in _leased(broker)}
    started_by_first = {e["key"] for e in ledger.starts() if e["pid"] == first.pid}
    assert in_flight, "the kill should catch jobs in flight"
    assert len(started_by_first) < N_JOBS, "the kill should land mid-batch"

    second = workers.start(lease=2.0, concurrency=8)
    wait_for(lambda: {e["key"] for e in ledger.ends()} == set(keys), "every job to run to its end", every=0.1)
    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "every job to be acknowledged")
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    assert "recovered expired leases" in second.log()  # the dead worker's jobs came back by their leases

    runs = ledger.runs()
    assert set(runs) == set(keys)  # at least once: every one of the 1000 ran
    twice = {key for key, n in runs.items() if n > 1}
    assert max(runs.values()) <= 2
    # ran twice <=> started by the killed worker and not acknowledged before the kill
    assert twice == in_flight & started_by_first, (sorted(twice), sorted(in_flight), sorted(started_by_first))
    for entry in ledger.starts():
        if entry["key"] in twice:
            assert entry["pid"] == (first.pid if entry["run"] == 1 else second.pid)
        else:
            assert entry["pid"] in (first.pid, second.pid)
    depths = app.broker.depths("default")
    assert depths == Depths()
    assert {job.result(timeout=5) for job in jobs} == set(keys)


def test_job_slower_than_three_leases_runs_exactly_once_among_three_workers(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    pool = [workers.start(lease=1.0, concurrency=2, wait=False) for _ in range(3)]
    for worker in pool:
        worker.wait_started()
    job = faultapp.work.delay("slow", 3.5)  # lease 1 s: renewed at ~0.33 s, else recovered by a peer
    assert job.result(timeout=30) == "slow"

    starts = [e for e in ledger.starts() if e["key"] == "slow"]
    ends = [e for e in ledger.ends() if e["key"] == "slow"]
    assert len(starts) == 1 and len(ends) == 1, ledger.entries()
    assert ends[0]["end"] - ends[0]["start"] > 3 * 1.0  # the run really outlived three leases
    assert job.status() == "succeeded"
    for worker in pool:
        assert worker.proc.poll() is None, worker.log()
        worker.signal(signal.SIGTERM)
    for worker in pool:
        assert worker.wait() == 0, worker.log()
        assert "lease lost" not in worker.log() and "recovered expired leases" not in worker.log()
    assert app.broker.depths("default") == Depths(ready=0, scheduled=0, running=0, dead=0)
