"""The lifecycle bugs of issue 10, each reproduced with real worker processes: a zombie's stale
prefetch, a stale outcome unhooking a fresh delivery, recovery serialising the fleet, false
"lease lost" lines, bursts that woke one idle worker only. Evidence: the ledger."""

from __future__ import annotations

import signal
import time

import faultapp
import redis
from harness import Ledger, Workers, wait_for

import taskq


def pids_of(ledger: Ledger, keys: set[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {key: [] for key in keys}
    for e in ledger.starts():
        if e["key"] in keys:
            out[e["key"]].append(e["pid"])
    return out


def test_a_zombie_never_starts_its_stale_prefetch(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    """Worker A (-c 1, prefetch 3) runs a long job with three more reserved in its buffer, and is
    SIGSTOPped past its lease; B recovers and runs them. After SIGCONT, A must start none of them."""
    hold = faultapp.work.delay("hold", 4.0)
    buffered = [faultapp.work.delay(f"z{i}", 0.05) for i in range(3)]
    a = workers.start("--prefetch", "3", lease=1.0, concurrency=1)
    wait_for(lambda: "hold" in ledger.runs(), "A to start the long job")
    wait_for(lambda: all(j.status() == "reserved" for j in buffered), "A to prefetch three jobs")
    a.signal(signal.SIGSTOP)
    try:
        b = workers.start(lease=1.0, concurrency=4)
        wait_for(lambda: all(j.status() == "succeeded" for j in buffered), "B to run the recovered jobs")
    finally:
        a.signal(signal.SIGCONT)
    time.sleep(5.0)  # A's long job ends and its slot frees: it would start its stale buffer now
    keys = {f"z{i}" for i in range(3)}
    assert pids_of(ledger, keys) == {key: [b.pid] for key in keys}, a.log()
    assert all(j.status() == "succeeded" for j in buffered)
    del hold
    for w in (a, b):
        w.signal(signal.SIGTERM)
        assert w.wait() == 0, w.log()


def test_after_redis_froze_past_the_lease_no_stale_prefetch_starts(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis,
) -> None:
    """Redis frozen (CLIENT PAUSE) longer than the lease while A holds a buffer: after it, A's
    renewals, A's starts and B's recovery reach Redis in whatever order; each job runs once.
    (The zombie test above and tests/test_intake.py force the losing orders one by one.)"""
    faultapp.work.delay("hold", 2.0)  # ends during the freeze: A then starts its buffer at once
    buffered = [faultapp.work.delay(f"f{i}", 0.05) for i in range(3)]
    a = workers.start("--prefetch", "3", lease=1.0, concurrency=1)
    wait_for(lambda: all(j.status() == "reserved" for j in buffered), "A to prefetch three jobs")
    b = workers.start(lease=1.0, concurrency=4)
    holder = a
    broker.execute_command("CLIENT", "PAUSE", "3000", "ALL")  # longer than the 1 s lease
    wait_for(lambda: all(j.status() == "succeeded" for j in buffered), "every buffered job to run")
    time.sleep(3.0)  # the long job has ended: a stale buffer would be started now
    runs = ledger.runs()
    assert [runs[f"f{i}"] for i in range(3)] == [1, 1, 1], (holder.log(), runs)
    for w in (a, b):
        w.signal(signal.SIGTERM)
        assert w.wait() == 0, w.log()


def test_a_refused_stale_outcome_leaves_the_fresh_delivery_alone(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger,
) -> None:
    """A runs X; stopped past its lease, X is recovered (by the test, as another worker's lease
    keeper would) and A itself takes X again under a new token while the stale run goes on. The
    stale outcome is refused; A must keep renewing the new lease, so X runs twice (the stale and
    the fresh delivery), never three times."""
    a = workers.start("--prefetch", "0", lease=1.0, concurrency=2)
    x = faultapp.work.delay("x", 3.0)
    wait_for(lambda: "x" in ledger.runs(), "A to start X")
    a.signal(signal.SIGSTOP)
    try:
        wait_for(lambda: app.broker.recover("default").requeued == 1, "X's lease to lapse and X to be recovered")
    finally:
        a.signal(signal.SIGCONT)
    assert x.result(timeout=30) == "x"
    time.sleep(3.0)  # a lapsed fresh lease would be recovered and X run a third time by now
    assert ledger.runs()["x"] == 2, a.log()
    assert "lease lost, result discarded" in a.log()  # the stale outcome, refused
    a.signal(signal.SIGTERM)
    assert a.wait() == 0, a.log()


def test_jobs_whose_worker_died_once_recover_at_full_concurrency(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis,
) -> None:
    """Four jobs lost their worker once (SIGKILL): the next worker runs them side by side, not one
    at a time as suspects (which took 4 x their length on one worker)."""
    first = workers.start(lease=1.0, concurrency=4)
    jobs = [faultapp.work.delay(f"r{i}", 2.0) for i in range(4)]
    wait_for(lambda: len(ledger.starts()) == 4, "the first worker to start all four")
    first.kill(broker, ledger.client)
    second = workers.start(lease=1.0, concurrency=4)
    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "the four jobs to succeed")
    reruns = [e for e in ledger.entries() if e["pid"] == second.pid]
    starts = sorted(e["start"] for e in reruns if e["event"] == "start")
    ends = sorted(e["end"] for e in reruns if e["event"] == "end")
    assert len(starts) == 4 and starts[-1] < ends[0], "all four ran at once"
    assert "running a suspect job alone" not in second.log()
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()


def test_a_healthy_worker_never_reports_a_lease_lost(app: taskq.TaskQ, workers: Workers) -> None:
    """Renewals (every lease/3, here 0.1 s) race the settling of thousands of finished jobs: a
    renewal must not report the ones that just finished as lost."""
    worker = workers.start(lease=0.3, concurrency=16)
    jobs = app.enqueue_many([(faultapp.add, (i, i)) for i in range(4000)])
    wait_for(lambda: jobs[-1].status() == "succeeded" and jobs[0].status() == "succeeded", "the jobs to run",
             every=0.1)
    wait_for(lambda: app.broker.depths("default").ready == 0, "the queue to drain", every=0.1)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
    assert "lease lost" not in worker.log(), worker.log()[-2000:]


def test_a_burst_reaches_every_idle_worker(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    """Two idle workers, -c 2 --prefetch 0: eight one-second jobs from one map() run on both
    (they all went to one worker, 4 s instead of 2 s)."""
    pool = [workers.start("--prefetch", "0", lease=2.0, concurrency=2) for _ in range(2)]
    time.sleep(0.5)  # both idle, blocked in Redis
    jobs = faultapp.work.starmap((f"b{i}", 1.0) for i in range(8))
    wait_for(lambda: all(j.status() == "succeeded" for j in jobs), "the burst to run")
    by_pid = [e["pid"] for e in ledger.starts()]
    assert {w.pid for w in pool} == set(by_pid) and all(by_pid.count(w.pid) == 4 for w in pool), by_pid
    for w in pool:
        w.signal(signal.SIGTERM)
        assert w.wait() == 0


def test_recovered_jobs_reach_every_idle_worker(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis,
) -> None:
    # leases of 6 s: the four idle workers are up and blocked in Redis before they lapse
    first = workers.start("--prefetch", "0", lease=6.0, concurrency=4)
    jobs = [faultapp.work.delay(f"c{i}", 1.0) for i in range(4)]
    wait_for(lambda: len(ledger.starts()) == 4, "the first worker to start all four")
    first.kill(broker, ledger.client)
    idle = [workers.start("--prefetch", "0", lease=1.0, concurrency=1, wait=False) for _ in range(4)]
    for w in idle:
        w.wait_started()
    assert broker.zcard("taskq:{default}:leases") == 4, "the idle workers started after the leases lapsed"
    wait_for(lambda: all(j.status() == "succeeded" for j in jobs), "the recovered jobs to run")
    rerun_by = {e["pid"] for e in ledger.starts() if e["pid"] != first.pid}
    assert rerun_by == {w.pid for w in idle}, rerun_by  # one each: all four woke for the recovery
    for w in idle:
        w.signal(signal.SIGTERM)
        assert w.wait() == 0
