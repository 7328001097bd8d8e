"""taskiq (+ taskiq-redis) under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

The broker URL comes from $BENCH_BROKER_URL (set by the adapter for itself and, via
Adapter.env, for the workers, which run `taskiq worker fw_taskiq:broker`).

Broker: taskiq_redis.RedisStreamBroker, the one taskiq-redis's README sets up for Redis (its
ListQueueBroker is "if you don't want acknowledges": BRPOP, a job popped by a worker that dies
is lost). The stream broker reads with XREADGROUP (up to 100 per read), XACKs each job after it
ran, and re-claims jobs left unacknowledged for 10 minutes (XAUTOCLAIM).
Its consumer group is created at "$" (new messages only) by broker.startup(), so the producer
calls startup() too, as taskiq's docs have client applications do; otherwise the jobs the
`process` workload enqueues before any worker started would never be delivered.
No result backend (taskiq's default is a dummy that stores nothing). taskiq has no bulk enqueue.

"best" = the fastest `process` setup found on this 2-core machine (shared with other benchmarks,
so noisy; configs compared back to back, n=20000; "cpu" = CPU ms per job over the worker processes):
    default (-w 2, --max-async-tasks 100, INFO log line per job)   ~1900-3000 jobs/s, cpu 0.50
    -w 2 --log-level WARNING                                       ~1250-3700/s, cpu 0.43-0.59
    -w 1 --log-level WARNING                                       ~1600-2300/s, cpu 0.37-0.48 (one core)
    -w 3 --log-level WARNING                                       ~850-1200/s, cpu 0.46-0.69
    -w 2 --log-level WARNING --no-parse                            ~1200/s, cpu 0.56
    -w 2 --log-level WARNING --max-async-tasks 20 / 500            ~780 / 780-4050/s, cpu 0.67 / 0.41-0.67
    -w 2 --log-level WARNING --max-prefetch 100                    ~800-4050/s, cpu 0.41-0.58
  Nothing measurably beat taskiq's own process/concurrency defaults: two worker processes use both
  cores, one is capped by one core, three only add overhead; warning logs save the per-job log line.
  (--ack-type when_received would ack before running, i.e. drop at-least-once: not used.)
  => best: `taskiq worker fw_taskiq:broker --workers 2 --log-level WARNING`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from importlib.metadata import version
from typing import Any

import common
from taskiq_redis import RedisStreamBroker

#: unset only in the adapter script's own __main__ copy, which never connects (port 1 fails loudly)
URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:1/0")

broker = RedisStreamBroker(URL)


@broker.task
async def noop(i: int) -> None:
    common.mark(i)


@broker.task
async def lat(t: float) -> None:
    common.record_latency(t)


TASKIQ = os.path.join(os.path.dirname(sys.executable), "taskiq")
BEST_ARGS = ["--workers", "2", "--log-level", "WARNING"]


def workers(config: str) -> tuple[str, list[list[str]]]:
    base = [TASKIQ, "worker", "fw_taskiq:broker"]
    if config == "default":
        return "taskiq worker fw_taskiq:broker (2 processes, max 100 async tasks each, info logs)", [base]
    return "taskiq worker fw_taskiq:broker " + " ".join(BEST_ARGS), [[*base, *BEST_ARGS]]


# The adapter process: one event loop for all calls, on the module's one broker (one redis pool).
_loop: asyncio.AbstractEventLoop | None = None


def _run(coro: Any) -> Any:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def _enqueue(i: int) -> None:
    _run(noop.kiq(i))


def _enqueue_latency(t: float) -> None:
    _run(lat.kiq(t))


def _reset() -> None:
    """After the broker was flushed: the client's broker.startup() (re)creates the consumer group."""
    _run(broker.startup())


def adapter(url: str) -> common.Adapter:
    os.environ["BENCH_BROKER_URL"] = url
    mod = importlib.import_module("fw_taskiq")  # the module as the workers see it (task names fw_taskiq:*)
    if url != mod.URL:  # imported earlier without the URL
        mod = importlib.reload(mod)
    return common.Adapter(
        framework="taskiq", version=f"{version('taskiq')} (taskiq-redis {version('taskiq-redis')})",
        enqueue=mod._enqueue, enqueue_latency=mod._enqueue_latency,
        enqueue_bulk=None, bulk_note="taskiq has no bulk enqueue API (one kiq() per job)",
        workers=mod.workers, env={"BENCH_BROKER_URL": url}, reset=mod._reset,
        enqueue_async=lambda i: mod.noop.kiq(i), run_async=mod._run,
    )


if __name__ == "__main__":
    common.main(adapter)
