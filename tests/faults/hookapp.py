"""The app of the hook fault test (`taskq worker hookapp:app -p 2`): a task, and hooks that write
one ledger record per event they receive, with the pid of the process that ran them."""

from __future__ import annotations

import os
import time

from faultapp import _record

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_FAULT_URL", "memory://hookapp"),
                  lease=float(os.environ.get("TASKQ_FAULT_LEASE", "1")), abort_grace=0.5)


@app.task(retries=1, backoff=taskq.Backoff(base=0.01, jitter=False))
def step(i: int) -> int:
    if i % 5 == 0 and taskq.current_job().attempt == 1:
        raise ValueError("fails once")
    return i


@app.on("started")
@app.on("succeeded")
@app.on("retrying")
def record(event: taskq.JobEvent) -> None:
    _record(f"hook-{event.kind.value}", event.job_id, event.attempt, 0.0)


@app.task(retries=3)
def stuck() -> None:
    """Ignores job.abort(): only killing its process stops it."""
    time.sleep(60)
