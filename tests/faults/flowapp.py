"""The app the flow-control fault tests run under `taskq worker flowapp:app` (subprocesses).

Its queues declare the flow limits under test: "ordered" has none (its jobs carry ordering
keys), "rated" a global rate limit, "capped" a concurrency cap, "parts" a cap per partition (and
fair turns between partitions). The evidence is faultapp's
ledger (a list on a second redis-server), written with faultapp's helpers: one record per
start and per end of a run; a run that raised records "fail" instead of "end".

Environment (read at import, as in faultapp):
    TASKQ_FAULT_URL      broker URL (the redis-server under test)
    TASKQ_FAULT_LEDGER   ledger URL (a different redis-server)
    TASKQ_FAULT_LEASE    app lease in seconds (default 1)
"""

from __future__ import annotations

import os
import random
import time

from faultapp import RUNS_PREFIX, _logged_sleep, _record, ledger

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_FAULT_URL", "memory://flowapp"),
                  lease=float(os.environ.get("TASKQ_FAULT_LEASE", "1")))

#: at most RATE starts per second across every worker; the cap: at most CAP jobs leased at once
RATE, CAP = 20, 2
app.queue("ordered")
app.queue("rated", rate_limit=f"{RATE}/s")
app.queue("capped", max_running=CAP)
app.queue("parts", partition_max_running=CAP, fair=True)

#: the share of attempts (all but the last) that fail
FAIL_RATE = 0.25
#: how long a stalled first run sleeps: it is SIGKILLed long before (a hang guard, not a wait)
STALL_S = 30.0


def _begin(key: str) -> tuple[int, float]:
    """Count and record the start of a run of `key`: (which run of its key it is, start time)."""
    run = int(ledger().incr(RUNS_PREFIX + key))
    started = time.time()
    _record("start", key, run, started)
    return run, started


def ordered_key(okey: str, index: int) -> str:
    """The ledger key of job `index` (0-based, in enqueue order) of ordering key `okey`."""
    return f"{okey}/{index:03d}"


@app.task(queue="ordered", retries=4, backoff=taskq.Backoff(base=0.05, factor=2.0, max=0.2))
def step(okey: str, index: int, seconds: float, stall: bool = False) -> str:
    """Job `index` of its ordering key: sleeps (its first run for STALL_S if `stall`), then
    fails at random on any attempt but the last, so some jobs retry before they succeed."""
    key = ordered_key(okey, index)
    run, started = _begin(key)
    time.sleep(STALL_S if stall and run == 1 else seconds)
    job = taskq.current_job()
    if job.attempt < job.max_attempts and random.random() < FAIL_RATE:
        _record("fail", key, run, started)
        raise ValueError(f"{key} fails at random (attempt {job.attempt})")
    _record("end", key, run, started)
    return key


@app.task(queue="ordered", retries=0)
def free(key: str, seconds: float) -> str:
    """A job without an ordering key in the same queue: sleeps, with start and end records."""
    _logged_sleep(key, seconds)
    return key


@app.task(queue="rated", retries=0)
def tick(i: int) -> int:
    """A no-op: its start time is the job record's started_ms (Redis's clock)."""
    return i


@app.task(queue="capped", retries=0)
def hold(key: str, seconds: float, stall: bool = False) -> str:
    """Sleeps (its first run for STALL_S if `stall`), with start and end records and the pid."""
    run, started = _begin(key)
    time.sleep(STALL_S if stall and run == 1 else seconds)
    _record("end", key, run, started)
    return key


@app.task(queue="parts", retries=0)
def visit(key: str, seconds: float, stall: bool = False) -> str:
    """hold() in the queue of partitions: its job's partition is the part of `key` before '-'."""
    run, started = _begin(key)
    time.sleep(STALL_S if stall and run == 1 else seconds)
    _record("end", key, run, started)
    return key
