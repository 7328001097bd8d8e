"""arq under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

The broker URL comes from $BENCH_BROKER_URL (set by the adapter for itself and, via
Adapter.env, for the workers, which run `arq fw_arq.WorkerSettings`).

arq has no bulk enqueue: every ArqRedis.enqueue_job is its own WATCH/EXISTS/MULTI/PSETEX/ZADD/EXEC.
Results are not kept (keep_result=0) since the jobs are no-ops.

"best" = the fastest `process` setup found on this 2-core machine (shared with other benchmarks,
so noisy; configs compared back to back, n=20000; "cpu" = worker CPU ms per job, steadier):
    default (1 process, max_jobs=10, poll_delay=0.5, INFO log lines per job)   ~200 jobs/s: each poll
        reads at most 100 ids (max(5 * max_jobs, 100)) and then sleeps out the rest of the 0.5 s
    1 process, max_jobs=10, poll_delay=0.05, INFO logs                          ~500-900/s, cpu 1.13
    1 process, poll_delay=0.05, warning logs, max_jobs=10/50/100/200            ~750-1200/s, cpu 0.8-0.95
        (max_jobs 50-100 a little ahead of 10 and 200; poll_delay 0.01 no better than 0.05)
    2 processes, max_jobs=10/50                                                 ~350-700/s: every process
        reads the same queue head and races for the same jobs (WATCH/EXISTS/ZSCORE/MULTI), so each job
        costs ~0.85 ms of CPU in *each* process and twice the redis work
  => best: 1 process, max_jobs=100, poll_delay=0.05, warning logs (--custom-log-dict).
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import os
import sys
from typing import Any

import common
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.logs import default_log_config
from arq.version import VERSION

#: unset only in the adapter script's own __main__ copy, which never connects (port 1 fails loudly)
URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:1/0")


async def noop(ctx: dict[str, Any], i: int) -> None:
    common.mark(i)


async def lat(ctx: dict[str, Any], t: float) -> None:
    common.record_latency(t)


class WorkerSettings:
    """The app's settings as arq's docs write them; only results are switched off."""

    functions = [noop, lat]  # noqa: RUF012 - arq reads this class attribute as written in its docs
    redis_settings = RedisSettings.from_dsn(URL)
    keep_result = 0


class BestSettings:
    """arq reads only a settings class's own __dict__, so no subclassing."""

    functions = [noop, lat]  # noqa: RUF012 - arq reads this class attribute as written in its docs
    redis_settings = WorkerSettings.redis_settings
    keep_result = 0
    max_jobs = 100
    poll_delay = 0.05


#: arq's own default logging config at WARNING instead of INFO (for --custom-log-dict)
QUIET_LOGS = copy.deepcopy(default_log_config(False))
QUIET_LOGS["handlers"]["arq.standard"]["level"] = "WARNING"
QUIET_LOGS["loggers"]["arq"]["level"] = "WARNING"

ARQ = os.path.join(os.path.dirname(sys.executable), "arq")


def workers(config: str) -> tuple[str, list[list[str]]]:
    if config == "default":
        return ("arq fw_arq.WorkerSettings (1 process, max_jobs=10, poll_delay=0.5, info logs)",
                [[ARQ, "fw_arq.WorkerSettings"]])
    return ("arq fw_arq.BestSettings --custom-log-dict fw_arq.QUIET_LOGS (1 process, max_jobs=100, "
            "poll_delay=0.05, warning logs)",
            [[ARQ, "fw_arq.BestSettings", "--custom-log-dict", "fw_arq.QUIET_LOGS"]])


# The adapter process: one event loop and one ArqRedis pool for all calls.
_loop: asyncio.AbstractEventLoop | None = None
_pool: ArqRedis | None = None


def _run(coro: Any) -> Any:
    global _loop, _pool
    if _loop is None:
        _loop = asyncio.new_event_loop()
        _pool = _loop.run_until_complete(create_pool(WorkerSettings.redis_settings))
    return _loop.run_until_complete(coro)


async def _enqueue_job(function: str, arg: Any) -> None:
    assert _pool is not None
    await _pool.enqueue_job(function, arg)


def _enqueue(i: int) -> None:
    _run(_enqueue_job("noop", i))


def _enqueue_latency(t: float) -> None:
    _run(_enqueue_job("lat", t))


def adapter(url: str) -> common.Adapter:
    os.environ["BENCH_BROKER_URL"] = url
    mod = importlib.import_module("fw_arq")  # the module as the workers see it, built for url
    if url != mod.URL:  # imported earlier without the URL
        mod = importlib.reload(mod)
    return common.Adapter(
        framework="arq", version=VERSION,
        enqueue=mod._enqueue, enqueue_latency=mod._enqueue_latency,
        enqueue_bulk=None, bulk_note="arq has no bulk enqueue API (one enqueue_job transaction per job)",
        workers=mod.workers, env={"BENCH_BROKER_URL": url},
        enqueue_async=lambda i: mod._enqueue_job("noop", i), run_async=mod._run,
    )


if __name__ == "__main__":
    common.main(adapter)
