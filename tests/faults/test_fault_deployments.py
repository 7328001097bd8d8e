"""Faults on a Redis Cluster and a Sentinel group: a SIGKILLed worker, and a primary killed
under load (promises 1 and 11). The evidence is the ledger on a separate redis-server.

What a failover may lose is Redis's asynchronous replication window (docs/operations.md):
writes the old primary acknowledged but had not yet sent to its replica. Every job here is
enqueued (and so replicated) well before the kill, so each one must run at least once or be in
the dead-letter list; an acknowledgement lost in the window only makes a job run again.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import faultapp
import pytest
import redis
from harness import Ledger, Workers, faultapp_at, wait_for
from redis_groups import ClusterGroup, SentinelGroup
from test_fault_beat import Beats

import taskq

QUEUE_KEY = "taskq:{default}:ready"


@pytest.fixture(params=["cluster", "sentinel"])
def deployment(request: pytest.FixtureRequest) -> tuple[str, ClusterGroup | SentinelGroup]:
    url = str(request.getfixturevalue(f"{request.param}_url"))
    return url, request.getfixturevalue(f"{request.param}_group")


@pytest.fixture
def fault_app(deployment: tuple[str, ClusterGroup | SentinelGroup],
              monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    yield from faultapp_at(deployment[0], monkeypatch)


@pytest.fixture
def fleet(deployment: tuple[str, ClusterGroup | SentinelGroup], ledger: Ledger, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(deployment[0], ledger.url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


def _data_nodes(group: ClusterGroup | SentinelGroup) -> list[redis.Redis]:
    nodes = group.nodes if isinstance(group, ClusterGroup) else [group.primary(), group.replica()]
    return [n.client() for n in nodes if n.proc is not None and n.proc.poll() is None]


def test_sigkill_mid_batch_every_job_runs(fault_app: taskq.TaskQ, fleet: Workers, ledger: Ledger,
                                          deployment: tuple[str, ClusterGroup | SentinelGroup]) -> None:
    keys = [f"job-{i:03d}" for i in range(300)]
    jobs = [faultapp.work.delay(key, 0.004) for key in keys]
    first = fleet.start(lease=1.0, concurrency=8)
    wait_for(lambda: len(ledger.ends()) >= 60, "the first worker to finish some jobs")
    first.kill(*_data_nodes(deployment[1]), ledger.client)
    assert len({e["key"] for e in ledger.ends()}) < len(keys), "the kill should land mid-batch"
    second = fleet.start(lease=1.0, concurrency=8)
    wait_for(lambda: {e["key"] for e in ledger.ends()} == set(keys), "every job to run", every=0.1)
    wait_for(lambda: all(j.status() == "succeeded" for j in jobs), "every job to be acknowledged")
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()
    runs = ledger.runs()
    assert set(runs) == set(keys) and max(runs.values()) <= 2


def test_a_killed_primary_fails_over_and_every_job_runs(
    fault_app: taskq.TaskQ, fleet: Workers, ledger: Ledger, tmp_path: Path,
    deployment: tuple[str, ClusterGroup | SentinelGroup],
) -> None:
    url, group = deployment
    keys = [f"job-{i:04d}" for i in range(2000)]
    # 50 ms each on 16 slots: about 6 s of work, so the kill lands with most of it still to do
    jobs = [faultapp.work.delay(key, 0.05) for key in keys]  # each acknowledged before the kill
    workers = [fleet.start(lease=2.0, concurrency=8) for _ in range(2)]
    beats = Beats(url, tmp_path)
    try:
        beat = beats.start(TASKQ_NAMESPACE="beats")  # its own namespace, the same slot ({default})
        wait_for(lambda: len(ledger.ends()) >= 300, "the workers to be busy")
        killed_at = time.time()
        old = group.kill_master_for_key(QUEUE_KEY) if isinstance(group, ClusterGroup) else group.kill_primary()
        failover_s = group.wait_failover(old)
        wait_for(lambda: any(e["end"] > killed_at + failover_s for e in ledger.ends()), "work to resume")
        resumed_s = min(e["end"] for e in ledger.ends() if e["end"] > killed_at + failover_s) - killed_at

        def settled() -> bool:
            ended = {e["key"] for e in ledger.ends()}
            return len(ended) == len(keys)

        wait_for(settled, "every job to run after the failover", timeout=60, every=0.2)
        dead = {e.id for e in fault_app.broker.dead("default", limit=None)}
        wait_for(lambda: all(j.id in dead or j.status() == "succeeded" for j in jobs), "every job to be recorded",
                 timeout=60, every=0.2)
        runs = ledger.runs()
        print(f"\n{type(group).__name__}: failover {failover_s:.1f} s, work resumed {resumed_s:.1f} s after "
              f"the kill; {len(keys)} jobs, {sum(runs.values()) - len(runs)} ran twice, "
              f"{len(dead)} dead-lettered, 0 lost", file=sys.stderr)
        assert set(runs) | dead >= set(keys)
        for proc in [*workers, beat]:
            assert proc.proc.poll() is None, proc.log()  # rode it out
            log = proc.log()
            assert log.count("redis back") <= 1 and ("redis unreachable" in log) == ("redis back" in log), log
        for proc in [*workers, beat]:
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.log()
    finally:
        beats.cleanup()
