"""The app the fault tests run under `taskq worker faultapp:app` (subprocesses).

Every run of a task writes evidence to a *ledger*: a list on a second redis-server,
so what the tests conclude never depends on taskq's own state in the broker.

Environment (read at import, so each worker subprocess gets its own settings):
    TASKQ_FAULT_URL      broker URL (the redis-server under test)
    TASKQ_FAULT_LEDGER   ledger URL (a different redis-server)
    TASKQ_FAULT_LEASE    app lease in seconds (default 1)
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import redis

import taskq

#: ledger list: one JSON record per start and per end of a run
LEDGER_KEY = "ledger"
#: ledger counters runs:<key>, so a run knows which run of its key it is
RUNS_PREFIX = "runs:"

app = taskq.TaskQ(os.environ.get("TASKQ_FAULT_URL", "memory://faultapp"),
                  lease=float(os.environ.get("TASKQ_FAULT_LEASE", "1")))

_ledger: redis.Redis | None = None
_ledger_lock = threading.Lock()


def ledger() -> redis.Redis:
    global _ledger
    with _ledger_lock:
        if _ledger is None:
            _ledger = redis.Redis.from_url(os.environ["TASKQ_FAULT_LEDGER"])
        return _ledger


def _record(event: str, key: str, run: int, started: float) -> None:
    entry: dict[str, Any] = {"event": event, "key": key, "run": run, "pid": os.getpid(),
                             "thread": threading.get_ident(), "start": started}
    if event == "end":
        entry["end"] = time.time()
    ledger().rpush(LEDGER_KEY, json.dumps(entry))


def _logged_sleep(key: str, seconds: float) -> None:
    run = int(ledger().incr(RUNS_PREFIX + key))
    started = time.time()
    _record("start", key, run, started)
    time.sleep(seconds)
    _record("end", key, run, started)


@app.task(retries=0)
def work(key: str, seconds: float) -> str:
    """Sleep, with a ledger record at the start and at the end; returns its key."""
    _logged_sleep(key, seconds)
    return key


@app.task(retries=0)
def add(x: int, y: int) -> int:
    return x + y


@app.task(retries=2)
def retry_now(key: str) -> None:
    """Fails at once and asks for an immediate retry (used to probe retry routing)."""
    run = int(ledger().incr(RUNS_PREFIX + key))
    _record("start", key, run, time.time())
    raise taskq.Retry(delay=0)


# --- tasks of the worker-process fault tests (test_fault_processes.py) --------------------

@app.task(retries=0)
def crash(key: str) -> None:
    """Kills its own worker process every time it runs (a poison job)."""
    run = int(ledger().incr(RUNS_PREFIX + key))
    _record("start", key, run, time.time())
    os._exit(1)


@app.task(retries=1, timeout=1.0, backoff=taskq.Backoff(base=0.1, jitter=False))
def hang(key: str, seconds: float) -> str:
    """Overruns its 1 s time limit when `seconds` > 1 (sync: only a process kill stops it)."""
    _logged_sleep(key, seconds)
    return key


_hoard: list[bytes] = []


@app.task(retries=0)
def hog(key: str, megabytes: int) -> str:
    """Keeps `megabytes` MiB alive in its process (leaky task code), then returns."""
    _hoard.append(os.urandom(megabytes * 2**20))
    _logged_sleep(key, 0.0)
    return key


# --- tasks of the operating tests (test_operate.py, test_metrics.py) -------------------------

@app.task(retries=0)
def flaky(key: str) -> str:
    """Fails on the first run of its key, succeeds on every later one (to replay from the DLQ)."""
    run = int(ledger().incr(RUNS_PREFIX + key))
    _record("start", key, run, time.time())
    if run == 1:
        raise ValueError(f"first run of {key} fails")
    return key


@app.task(retries=0)
def step(key: str, seconds: float) -> str:
    """Reports progress (0.5, "halfway"), then sleeps like work()."""
    taskq.current_job().progress(0.5, "halfway")
    _logged_sleep(key, seconds)
    return key


# --- at_most_once (test_fault_at_most_once.py) ---------------------------------------------------

@app.task(retries=3, at_most_once=True)
def once(key: str, seconds: float) -> str:
    """work(), at most once: if its worker dies while it runs, it is dead-lettered, never run again."""
    _logged_sleep(key, seconds)
    return key
