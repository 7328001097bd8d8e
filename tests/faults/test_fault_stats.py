"""History under SIGKILL: the per-minute counts (lib/stats.lua) count what really happened when a
worker dies mid-batch and its jobs run again on another: every job enqueued and succeeded once,
runs started at least as often as bodies ran (the ledger's evidence) and at most once more per job
in flight at the kill. Sleeps set the workload; waits are hang guards."""

from __future__ import annotations

import signal

import faultapp
import redis
from harness import Ledger, Workers, wait_for

import taskq

N_JOBS = 300


def _leased(broker: redis.Redis) -> set[str]:
    return {m.decode() for m in broker.zrange("taskq:{default}:leases", 0, -1)}


def test_history_counts_the_runs_that_happened_when_a_worker_is_killed(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis
) -> None:
    jobs = [faultapp.work.delay(f"job-{i:03d}", 0.01) for i in range(N_JOBS)]
    first = workers.start(lease=1.0, concurrency=8)
    wait_for(lambda: len(ledger.ends()) >= 60, "the first worker to finish some jobs")
    first.kill(broker, ledger.client)
    in_flight = _leased(broker)
    assert in_flight, "the kill should catch jobs in flight"
    second = workers.start(lease=1.0, concurrency=8)
    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "every job to succeed", every=0.1)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()

    points = app.stats(queue="default", since=900)
    total = {k: sum(getattr(p, k) for p in points) for k in ("enqueued", "started", "succeeded", "failed", "dead")}
    runs = sum(ledger.runs().values())
    assert total["enqueued"] == N_JOBS and total["succeeded"] == N_JOBS, total
    assert total["failed"] == 0 and total["dead"] == 0, total
    assert runs <= total["started"] <= N_JOBS + len(in_flight), (total, runs, len(in_flight))
    assert total["started"] >= N_JOBS  # every job started at least once
