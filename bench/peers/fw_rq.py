"""RQ under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

Best config: see the comment above workers().
"""

from __future__ import annotations

import os
import sys

import common
import rq
from redis import Redis
from rq import Queue

url_env = common.BROKER_ENV


#: RQ settings read by `rq worker -c fw_rq` (every UPPERCASE name of the module is a setting).
#: Naming this module as the worker's settings module also imports it, and so `common`, once
#: in the worker before it forks its work horses, instead of once per job in each work horse.
REDIS_URL = common.broker_url()

queue = Queue("default", connection=Redis.from_url(REDIS_URL))


def noop(i: int) -> None:
    common.mark(i)


def lat(t: float) -> None:
    common.record_latency(t)


# RQ refers to functions by dotted name; the adapter process runs this file as __main__,
# the workers import it as fw_rq. result_ttl=0: the job and its result are deleted on success.
noop_ref, lat_ref = "fw_rq.noop", "fw_rq.lat"


def enqueue(i: int) -> None:
    queue.enqueue(noop_ref, i, result_ttl=0)


def enqueue_latency(t: float) -> None:
    queue.enqueue(lat_ref, t, result_ttl=0)


def enqueue_bulk(r: range) -> None:
    # Queue.enqueue_many: every job of the call is written in one Redis pipeline.
    queue.enqueue_many([Queue.prepare_data(noop_ref, (i,), result_ttl=0) for i in r])


# Default: `rq worker` forks a work horse per job. Run as plain `rq worker -u URL`, each work
# horse imports this module (and common) afresh: 17-24 jobs/s, too slow for the 600 s limit of
# `process` at n=20000. `rq worker -c fw_rq` names this module as the worker's settings module
# (REDIS_URL above), which the worker imports before forking, as RQ's performance notes advise:
# 33-44 jobs/s. So the default config is that. Even so, on a busy 2-core machine it ran at
# 19-33 jobs/s and `process` at n=20000 timed out (18,000 jobs in common's 600 s needs 30/s):
# use n <= 10000 for RQ's default config.
# Best config, from back-to-back `process` runs (n=2000-4000, jobs/s) on this 2-core machine while
# other benchmarks ran beside it (load 3-6, so every number is noisy):
#   1 x rq worker -c fw_rq (forking Worker), info logs                  33-44
#   2 x rq worker -c fw_rq --logging_level WARNING (forking)            31
#   1 x rq worker -w rq.worker.SimpleWorker (no fork), info logs        217
#   1 x ... SimpleWorker --logging_level WARNING                        260-312
#   2 x ... SimpleWorker --logging_level WARNING                        227 (info logs), 270-315
#   3 x ... SimpleWorker --logging_level WARNING                        245-298
#   rq worker-pool -n 2 -w rq.worker.SimpleWorker -l WARNING            184-314, mostly ~210
#   rq worker-pool -n 3 / -n 4, same                                    134 / 156
# One SimpleWorker ran as fast as two here only because the other benchmarks took the second
# core; two is what a user would run on a 2-core machine, and never lost.
def workers(config: str) -> tuple[str, list[list[str]]]:
    base = [sys.executable, "-m", "rq.cli", "worker", "-c", "fw_rq"]
    if config == "default":
        return "rq worker -c fw_rq (1 worker, forks a work horse per job, info logs)", [base]
    return ("2 x rq worker -c fw_rq -w rq.worker.SimpleWorker --logging_level WARNING",
            [[*base, "-w", "rq.worker.SimpleWorker", "--logging_level", "WARNING"] for _ in range(2)])


def adapter(url: str) -> common.Adapter:
    global queue
    os.environ[url_env] = url
    queue = Queue("default", connection=Redis.from_url(url))
    return common.Adapter(
        framework="rq", version=rq.__version__,
        enqueue=enqueue, enqueue_latency=enqueue_latency, enqueue_bulk=enqueue_bulk,
        async_note="RQ has no asyncio producer API (Queue.enqueue blocks the loop)",
        workers=workers, env={url_env: url},
        process_n={"default": 2000},  # ~35 jobs/s: 20000 jobs would take 10 minutes per run
    )


if __name__ == "__main__":
    common.main(adapter)
