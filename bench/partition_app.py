"""The app bench/partitions.py runs in its workers: a no-op task for processing throughput and a
~1 ms task that writes when it started and ended, for the fairness figure. The queue's partition
settings come from the environment, so the producer and every worker declare the same queue:
$TASKQ_FAIR ("1": fair=True), $TASKQ_PART_CAP (partition_max_running, "0": none)."""

from __future__ import annotations

import os
import time

import redis

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))
PART_CAP = int(os.environ.get("TASKQ_PART_CAP", "0"))
app.queue("default", fair=os.environ.get("TASKQ_FAIR") == "1", partition_max_running=PART_CAP or None)
#: the fairness run's ledger: one line per job, "partition start end enqueued" (unix seconds)
LEDGER = "bench:ledger"
_ledger = redis.Redis.from_url(os.environ.get("TASKQ_URL") or "redis://localhost:6379/0")


@app.task
def noop(i: int) -> None:
    return None


@app.task
def work(partition: str, enqueued: float) -> None:
    """About 1 ms of a job's work (a sleep: threads overlap it), its times written to the ledger."""
    start = time.time()
    time.sleep(0.001)
    _ledger.rpush(LEDGER, f"{partition} {start} {time.time()} {enqueued}")


def enqueue(n: int, partitions: int) -> None:
    """n no-op jobs over `partitions` partitions (0: none), one map() per partition (map() gives
    all its jobs one partition), partition p taking items p, p + partitions, ..."""
    if not partitions:
        noop.map(range(n))
        return
    for p in range(partitions):
        noop.options(partition=f"p{p}").map(range(p, n, partitions))
