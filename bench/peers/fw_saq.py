"""SAQ under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

The broker URL comes from $BENCH_BROKER_URL (set by the adapter for itself and, via
Adapter.env, for the workers, which run `saq fw_saq.settings`).

SAQ 0.26 has no bulk enqueue: Queue.map is asyncio.gather over single enqueues and then waits
for the results. Jobs are enqueued with ttl=-1, so a finished job's key (its result) is deleted.

"best" = the fastest `process` setup found on this 2-core machine (shared with other benchmarks,
so noisy; configs compared back to back, n=20000; "cpu" = worker CPU ms per job, all processes):
    1 process (the default), concurrency 10 / 20 / 50   ~900-1000 / ~750 / ~900-1230 jobs/s, cpu 0.70-0.85
    --workers 2, concurrency 5                           ~700-1050/s, cpu 0.85-1.04
    --workers 2, concurrency 10                          ~1450-2000/s, cpu 0.65-0.74
    --workers 2, concurrency 20                          ~600-1000/s, cpu 0.73-1.06
    --workers 2, concurrency 50                          ~800-1900/s, cpu 0.83-0.95
    --workers 2, concurrency 100                         ~950/s, cpu 1.03
    --workers 3, concurrency 50                          ~1300/s, cpu 0.97
  BLMOVE hands each job to one process, so a second process adds no duplicate work; concurrency 10
  (SAQ's default) came out ahead of both smaller and larger values. SAQ logs at WARNING by default.
  => best: `saq fw_saq.settings --workers 2` (2 processes, concurrency 10).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from typing import Any

import common
import saq
from saq import Queue

#: unset only in the adapter script's own __main__ copy, which never connects (port 1 fails loudly)
URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:1/0")

queue = Queue.from_url(URL)


async def noop(ctx: dict[str, Any], *, i: int) -> None:
    common.mark(i)


async def lat(ctx: dict[str, Any], *, t: float) -> None:
    common.record_latency(t)


#: the app's worker settings as SAQ's docs write them (default concurrency 10)
settings = {"queue": queue, "functions": [noop, lat]}

SAQ = os.path.join(os.path.dirname(sys.executable), "saq")


def workers(config: str) -> tuple[str, list[list[str]]]:
    if config == "default":
        return "saq fw_saq.settings (1 process, concurrency 10, warning logs)", [[SAQ, "fw_saq.settings"]]
    return ("saq fw_saq.settings --workers 2 (2 processes, concurrency 10 each, warning logs)",
            [[SAQ, "fw_saq.settings", "--workers", "2"]])


# The adapter process: one event loop for all calls, on the module's one queue (one redis pool).
_loop: asyncio.AbstractEventLoop | None = None


def _run(coro: Any) -> Any:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
        _loop.run_until_complete(queue.connect())
    return _loop.run_until_complete(coro)


def _enqueue(i: int) -> None:
    _run(queue.enqueue("noop", i=i, ttl=-1))


def _enqueue_latency(t: float) -> None:
    _run(queue.enqueue("lat", t=t, ttl=-1))


def adapter(url: str) -> common.Adapter:
    os.environ["BENCH_BROKER_URL"] = url
    mod = importlib.import_module("fw_saq")  # the module as the workers see it, built for url
    if url != mod.URL:  # imported earlier without the URL
        mod = importlib.reload(mod)
    return common.Adapter(
        framework="saq", version=saq.__version__,
        enqueue=mod._enqueue, enqueue_latency=mod._enqueue_latency,
        enqueue_bulk=None,
        bulk_note="SAQ has no bulk enqueue API (Queue.map gathers single enqueues and waits for the results)",
        workers=mod.workers, env={"BENCH_BROKER_URL": url},
        enqueue_async=lambda i: mod.queue.enqueue("noop", i=i, ttl=-1), run_async=mod._run,
    )


if __name__ == "__main__":
    common.main(adapter)
