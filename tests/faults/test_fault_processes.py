"""Worker processes under `taskq worker -p`: child kills, supervisor kill, poison jobs,
time limits and recycling (issue 3). The evidence is the ledger on a second redis-server."""

from __future__ import annotations

import os
import random
import signal
import time

import faultapp
import redis
from harness import Ledger, WorkerProc, Workers, alive, children, wait_for

import taskq
from taskq.broker.base import Depths


def start_supervisor(workers: Workers, processes: int, *args: str, concurrency: int = 4,
                     lease: float = 2.0, grace: float = 30.0) -> WorkerProc:
    sup = workers.start("-p", str(processes), *args, lease=lease, concurrency=concurrency, grace=grace)
    wait_for(lambda: len(children(sup.pid)) == processes and sup.log().count("worker started") >= processes,
             f"{processes} worker processes to start")
    return sup


def test_random_child_sigkilled_every_second_every_job_completes(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger, broker: redis.Redis
) -> None:
    keys = [f"job-{i:04d}" for i in range(2000)]
    jobs = [faultapp.work.delay(key, 0.08) for key in keys]  # ~20 s of work for 8 slots
    sup = start_supervisor(workers, 2, concurrency=4)
    rng = random.Random(7)
    killed: dict[int, float] = {}  # pid -> time of its kill
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len({e["key"] for e in ledger.ends()}) < len(keys):
        time.sleep(1.0)
        live = sorted(children(sup.pid) - set(killed))
        if live:
            victim = rng.choice(live)
            killed[victim] = time.time()
            os.kill(victim, signal.SIGKILL)
    assert len(killed) >= 10, "the run should last long enough for many kills"
    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "every job to succeed", timeout=120,
             every=0.2)
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.log()

    runs = ledger.runs()
    assert set(runs) == set(keys)
    starts = ledger.starts()
    ended = {(e["key"], e["run"]) for e in ledger.ends()}
    for key in (k for k, n in runs.items() if n > 1):
        earlier = [e for e in starts if e["key"] == key and e["run"] < runs[key]]
        for e in earlier:  # a rerun only after its process was killed while it was in flight
            assert e["pid"] in killed and e["start"] <= killed[e["pid"]], (key, e, killed)
    assert sum(n - 1 for n in runs.values()) <= 4 * len(killed) * 2  # bounded by what was in flight
    assert "child died, replacing it" in sup.log()
    assert len(ended) >= len(keys)
    assert app.broker.depths("default") == Depths(ready=0, scheduled=0, running=0, dead=0)


def test_sigkilled_supervisor_leaves_no_orphans_and_jobs_complete_later(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    jobs = [faultapp.work.delay(f"job-{i:03d}", 0.05) for i in range(300)]
    sup = start_supervisor(workers, 2, concurrency=4, grace=5.0)
    kids = children(sup.pid)
    wait_for(lambda: len(ledger.ends()) >= 20, "some jobs to finish")
    sup.signal(signal.SIGKILL)
    sup.wait()
    wait_for(lambda: not any(alive(pid) for pid in kids), "the orphaned children to exit")
    assert "supervisor gone, stopping" in sup.log()

    second = workers.start(concurrency=8)
    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "every job to succeed", every=0.2)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    assert set(ledger.runs()) == {f"job-{i:03d}" for i in range(300)}


def test_poison_job_is_dead_lettered_after_max_lost_and_others_keep_flowing(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    poison = faultapp.crash.delay("poison")
    others = [faultapp.work.delay(f"ok-{i:03d}", 0.01) for i in range(200)]
    sup = start_supervisor(workers, 2, concurrency=4)
    try:
        poison.result(timeout=60)
    except taskq.TaskFailed as exc:
        assert exc.reason.startswith("lease_expired: lost its worker 5 times"), exc.reason
    else:
        raise AssertionError("the poison job should be dead-lettered")
    wait_for(lambda: all(job.status() == "succeeded" for job in others), "the other jobs to succeed")
    assert ledger.runs()["poison"] == app.max_lost == 5, sup.log()  # bounded deliveries, no crash loop
    assert sup.proc.poll() is None
    wait_for(lambda: len(children(sup.pid)) == 2, "the supervisor to replace the last child the poison killed")
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.log()
    assert app.broker.depths("default").dead == 1


def test_job_over_its_time_limit_is_killed_reported_and_retried_per_policy(
    app: taskq.TaskQ, workers: Workers, ledger: Ledger
) -> None:
    slow = faultapp.hang.delay("slow", 30.0)  # timeout=1, retries=1
    quick = faultapp.hang.delay("quick", 0.1)
    sup = start_supervisor(workers, 1, concurrency=2)
    with_others = [faultapp.work.delay(f"ok-{i}", 0.01) for i in range(50)]
    try:
        slow.result(timeout=60)
    except taskq.TaskFailed as exc:
        assert exc.reason.startswith("retries_exhausted: TimeLimitExceeded: time limit exceeded: killed after")
        assert "(attempt 2 of 2)" in exc.reason
    else:
        raise AssertionError("the job over its time limit should fail")
    assert quick.result(timeout=30) == "quick"
    wait_for(lambda: all(job.status() == "succeeded" for job in with_others), "the other jobs to succeed")
    assert ledger.runs()["slow"] == 2, sup.log()  # the first attempt and its one retry, each killed
    assert not [e for e in ledger.ends() if e["key"] == "slow"]  # never ran to its end
    wait_for(lambda: sup.log().count("child killed over a time limit, replacing it") == 2,
             "the supervisor to replace the second killed process")
    assert sup.log().count("time limit exceeded, killing this worker process") == 2
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0, sup.log()


def test_children_are_recycled_after_max_jobs(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    jobs = [faultapp.work.delay(f"job-{i:02d}", 0.0) for i in range(40)]
    sup = start_supervisor(workers, 1, "--max-jobs-per-child", "10", concurrency=4)
    wait_for(lambda: all(job.status() == "succeeded" for job in jobs), "every job to succeed")
    pids = [e["pid"] for e in ledger.starts()]
    assert max(pids.count(p) for p in set(pids)) <= 10
    assert len(set(pids)) >= 4
    assert max(ledger.runs().values()) == 1  # recycling is graceful: nothing runs twice
    assert sup.log().count("child recycled") >= 3
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0


def test_children_are_recycled_over_max_memory(app: taskq.TaskQ, workers: Workers, ledger: Ledger) -> None:
    sup = start_supervisor(workers, 1, "--max-memory-per-child", "150", concurrency=1)
    first = children(sup.pid)
    job = faultapp.hog.delay("hog", 200)
    assert job.result(timeout=30) == "hog"
    wait_for(lambda: "memory limit reached, recycling" in sup.log(), "the child to notice its memory")
    wait_for(lambda: len(children(sup.pid) - first) == 1, "a fresh child to replace it")
    assert faultapp.add.delay(1, 2).result(timeout=30) == 3
    sup.signal(signal.SIGTERM)
    assert sup.wait() == 0
