"""Celery under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

Best config: see the comment above workers().
"""

from __future__ import annotations

import os
import sys

import celery
import common
from celery import Celery, group

ENV = common.BROKER_ENV


app = Celery("fw_celery", broker=common.broker_url())
app.conf.update(
    task_ignore_result=True,  # no result backend at all: the jobs are no-ops
    broker_connection_retry_on_startup=True,  # the default, said explicitly to silence the 5.x warning
)


# Explicit names: the adapter process imports this module as __main__, the workers as fw_celery.
@app.task(name="fw_celery.noop", ignore_result=True)
def noop(i: int) -> None:
    common.mark(i)


@app.task(name="fw_celery.lat", ignore_result=True)
def lat(t: float) -> None:
    common.record_latency(t)


def enqueue_bulk(r: range) -> None:
    # Celery's only way to send many tasks in one call is a group; it publishes the
    # messages one by one over one producer (there is no pipelined bulk publish).
    group(noop.s(i) for i in r).apply_async()


# Best config, from back-to-back `process` runs (n=20000, jobs/s) on this 2-core machine while
# other benchmarks ran beside it (load 3-6, so every number is noisy; runs were interleaved):
#   default: prefork -c 2 (1 process), prefetch x4, warning logs       490-770
#   prefork -c 2 --prefetch-multiplier 64                               560-800
#   prefork -c 4                                                        640
#   1 process, -P threads -c 8 --prefetch-multiplier 64                 810
#   2 processes, -P threads -c 4 (or -c 2) --prefetch-multiplier 64/16  740-1190
#   1 process, -P solo --prefetch-multiplier 64                         1070
#   2 processes, -P solo (prefetch x4)                                  850-1950, mostly 1000-1170
#   2 processes, -P solo --prefetch-multiplier 64                       800-1400, mostly 1000-1200
#     ... + --without-gossip --without-mingle --without-heartbeat       1060-1570
#   3 processes, -P solo                                                970-1430
# Two solo-pool workers (one per core, each running its tasks in its main thread) roughly
# double prefork; the prefetch multiplier makes no reliable difference (kombu's Redis
# transport fetches one message per BRPOP whatever the prefetch), so it stays at the default.
def workers(config: str) -> tuple[str, list[list[str]]]:
    base = [sys.executable, "-m", "celery", "-A", "fw_celery", "worker"]
    if config == "default":
        return "celery -A fw_celery worker (prefork, -c 2 = CPUs, prefetch x4, warning logs)", [base]
    return ("2 x celery -A fw_celery worker -P solo -l warning (prefetch x4)",
            [[*base, "-P", "solo", "-l", "warning", "-n", f"w{k}@%h"] for k in (1, 2)])


def adapter(url: str) -> common.Adapter:
    os.environ[ENV] = url
    app.conf.broker_url = url
    return common.Adapter(
        framework="celery", version=celery.__version__,
        enqueue=lambda i: noop.delay(i), enqueue_latency=lambda t: lat.delay(t),
        enqueue_bulk=enqueue_bulk,
        async_note="Celery has no asyncio producer API (apply_async blocks the loop)",
        workers=workers, env={ENV: url},
    )


if __name__ == "__main__":
    common.main(adapter)
