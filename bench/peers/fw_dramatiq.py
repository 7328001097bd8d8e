"""Dramatiq under the shared workloads (bench/peers/common.py). Runs in the peers virtualenv.

Best config: see the comment above workers().
"""

from __future__ import annotations

import os
import sys

import common
import dramatiq
from dramatiq.brokers.redis import RedisBroker

ENV = common.BROKER_ENV


# Dramatiq stores no results unless the Results middleware is added (it is not).
broker = RedisBroker(url=common.broker_url())
dramatiq.set_broker(broker)


@dramatiq.actor
def noop(i: int) -> None:
    common.mark(i)


@dramatiq.actor
def lat(t: float) -> None:
    common.record_latency(t)


def enqueue_bulk(r: range) -> None:
    # Dramatiq's way to send many messages in one call is a group; group.run() enqueues
    # the messages one by one (one Lua script call each; there is no pipelined enqueue).
    dramatiq.group(noop.message(i) for i in r).run()


# Best config, from back-to-back `process` runs (n=20000, jobs/s) on this 2-core machine while
# other benchmarks ran beside it (load 3-10, so every number is noisy; runs were interleaved):
#   default: -p 2 -t 8, prefetch 16 per process                  2280-4120
#   -p 1 -t 8                                                    1770-1950
#   -p 2 -t 2 / -t 4                                             950-1030 / 1750-2010
#   -p 2 -t 16 (prefetch 32) / -t 32 (prefetch 64)               3270-4600 / 3580-3800
#   dramatiq_queue_prefetch=256 -p 2 -t 2                        2570-2690
#   dramatiq_queue_prefetch=256 -p 2 -t 8                        3720-4880
#   dramatiq_queue_prefetch=1000 -p 2 -t 8                       3490-6860
#   dramatiq_queue_prefetch=256 -p 2 -t 16                       5180-7650
#   dramatiq_queue_prefetch=512 / 1000, -p 2 -t 16               4520-7370 / 5680-5830
#   dramatiq_queue_prefetch=256 -p 2 -t 32                       3700-8390
#   dramatiq_queue_prefetch=256 -p 3 -t 16                       3200-5070
# The Redis consumer fetches at most `prefetch` minus the messages it holds per round trip, so a
# bigger prefetch (an environment variable Dramatiq documents) is what helps. Dramatiq has no
# log-level option, and logs nothing per message at info level anyway. Messages are still
# acknowledged after they run.
def workers(config: str) -> tuple[str, list[list[str]]]:
    base = [sys.executable, "-m", "dramatiq", "fw_dramatiq"]
    if config == "default":
        return "dramatiq fw_dramatiq (-p 2 = CPUs, -t 8, prefetch 2 x threads, info logs)", [base]
    return ("dramatiq_queue_prefetch=256 dramatiq fw_dramatiq -p 2 -t 16",
            [["env", "dramatiq_queue_prefetch=256", *base, "-p", "2", "-t", "16"]])


def adapter(url: str) -> common.Adapter:
    os.environ[ENV] = url
    return common.Adapter(
        framework="dramatiq", version=dramatiq.__version__,
        enqueue=lambda i: noop.send(i), enqueue_latency=lambda t: lat.send(t),
        enqueue_bulk=enqueue_bulk,
        async_note="Dramatiq has no asyncio producer API (send() blocks the loop)",
        workers=workers, env={ENV: url},
    )


if __name__ == "__main__":
    common.main(adapter)
