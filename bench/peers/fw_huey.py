"""Huey under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

Best config: 4 worker processes with quiet logging (see workers()).
"""

from __future__ import annotations

import os
import sys

import common
import huey as huey_pkg
from huey import RedisHuey

ENV = common.BROKER_ENV


# results=False: Huey stores no task return values.
huey = RedisHuey("fw_huey", url=common.broker_url(), results=False)


@huey.task()
def noop(i: int) -> None:
    common.mark(i)


@huey.task()
def lat(t: float) -> None:
    common.record_latency(t)


# Best config, from back-to-back `process` runs (n=20000, jobs/s) on this 2-core machine while
# other benchmarks ran beside it (load 3-7, so every number is noisy; runs were interleaved):
#   default: 1 worker thread, info logs (a line per task)        1430-2410
#   -q (warning logs), 1 worker thread                           1570-5330
#   -q -w 2 (threads)                                            1920-5120
#   -q -w 4 (threads)                                            2360-3240
#   -q -w 2 -k process                                           2680-4670
#   -q -w 4 -k process                                           2130
#   -q -b 1.05 -m 0.1 -w 2 -k process (faster polling backoff)   3090-4520
#   2 consumers, each -q (1 thread)                              3270-4280
# Quiet logs matter most; threads vs processes was a tie within the noise. Two worker processes
# are what use both cores once the machine is not shared, and were the steadiest.
def workers(config: str) -> tuple[str, list[list[str]]]:
    base = [sys.executable, "-m", "huey.bin.huey_consumer", "fw_huey.huey"]
    if config == "default":
        return "huey_consumer fw_huey.huey (1 worker thread, info logs)", [base]
    return "huey_consumer fw_huey.huey -w 2 -k process -q (warning logs)", [[*base, "-w", "2", "-k", "process", "-q"]]


def adapter(url: str) -> common.Adapter:
    os.environ[ENV] = url
    # Huey names a task after its module and function. This file runs as __main__ in the
    # adapter process but is imported as fw_huey by the consumer, so enqueue through the
    # fw_huey module (this same file, imported under that name).
    import fw_huey
    return common.Adapter(
        framework="huey", version=huey_pkg.__version__,
        enqueue=lambda i: fw_huey.noop(i), enqueue_latency=lambda t: fw_huey.lat(t),
        # Task.map(): Huey's call for many jobs; it enqueues them one by one (an LPUSH each).
        enqueue_bulk=lambda r: fw_huey.noop.map(r),
        async_note="Huey has no asyncio producer API (calling a task blocks the loop)",
        workers=workers, env={ENV: url},
    )


if __name__ == "__main__":
    common.main(adapter)
