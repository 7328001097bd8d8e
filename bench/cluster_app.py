"""The app bench/cluster.py runs: one no-op task, enqueued into many queues with options(queue=)."""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))


@app.task
def noop(i: int) -> None:
    return None


#: enqueue -> start seconds of each `stamp` job run in this process (bench/cluster.py's latency)
latencies: list[float] = []


@app.task
def stamp(sent: float) -> None:
    import time

    latencies.append(time.perf_counter() - sent)
