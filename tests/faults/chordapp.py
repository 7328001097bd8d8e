"""The app the workflow fault test runs under `taskq worker chordapp:app` (subprocesses): chords
whose members and callbacks live in two queues (two Cluster slots), and a worker that may
SIGKILL itself right after a step's ack, before it tells the step's successors.

Evidence goes to faultapp's ledger (a second redis-server): one record per callback run, with
its job id, delivery and the results it was given.

Environment (read at import, as in faultapp): TASKQ_FAULT_URL, TASKQ_FAULT_LEDGER,
TASKQ_FAULT_LEASE, and TASKQ_FAULT_CRASHES: at most this many self-kills after an ack, across
every worker (counted in the ledger).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from typing import Any

from faultapp import LEDGER_KEY, ledger

import taskq
from taskq.worker import Worker

app = taskq.TaskQ(os.environ.get("TASKQ_FAULT_URL", "memory://chordapp"),
                  lease=float(os.environ.get("TASKQ_FAULT_LEASE", "1")))

#: the share of ended steps after whose ack the worker SIGKILLs itself (while crashes remain)
CRASH_RATE = 0.03
CRASHES = int(os.environ.get("TASKQ_FAULT_CRASHES", "0"))


@app.task(queue="members", retries=3, backoff=taskq.Backoff(base=0.05, jitter=False))
def member(chord: int, i: int) -> int:
    time.sleep(random.uniform(0.05, 0.15))
    return i


@app.task(queue="callbacks", retries=3)
def callback(values: list[Any], chord: int) -> int:
    job = taskq.current_job()
    time.sleep(random.uniform(0.002, 0.01))
    ledger().rpush(LEDGER_KEY, json.dumps({"event": "callback", "key": str(chord), "job": job.id,
                                           "attempt": job.attempt, "values": values, "pid": os.getpid()}))
    return len(values)


_tell = Worker._continue


def _continue_or_die(self: Worker, queue: str, ids: list[str]) -> None:
    """The settle recorded the steps' ends (their ack): die now, at random, before telling."""
    if CRASHES and random.random() < CRASH_RATE and int(ledger().incr("crashes")) <= CRASHES:
        os.kill(os.getpid(), signal.SIGKILL)
    _tell(self, queue, ids)


Worker._continue = _continue_or_die  # type: ignore[method-assign]
