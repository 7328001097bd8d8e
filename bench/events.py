"""What the queues' event streams cost: processing and enqueue throughput with the stream on (the
default) against off (`app.queue("default", events=False)`), in one run.

Usage: python bench/events.py [--n 20000] [--repeat 5]
Processing: bench/limits.py's run (a fresh redis-server, n no-op jobs, two `taskq worker -c 16
--burst` processes timed from start to exit) with the stream on ("off" there: no flow control)
and off ("no_events"). Enqueue: in this process, n jobs through map() and 2000 through delay(),
on a fresh redis-server each. Each round runs both back to back; "cost" is the median over
rounds of 1 - (rate with the stream / rate without): how much slower the stream makes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _redis import redis_url
from limits import run_once

import taskq


def enqueue_rates(url: str, events: bool, n: int) -> tuple[float, float]:
    app = taskq.TaskQ(url)
    app.queue("default", events=events)

    @app.task
    def noop(i: int) -> None: ...

    noop.delay(0)  # connects, registers the queue (and its events setting)
    start = time.perf_counter()
    noop.map(range(n))
    bulk = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(2000):
        noop.delay(i)
    single = 2000 / (time.perf_counter() - start)
    app.broker.close()
    return bulk, single


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rates: dict[str, dict[str, list[float]]] = {m: {"on": [], "off": []} for m in ("process", "map", "delay")}
    for _ in range(args.repeat):
        for side, flow in (("on", "off"), ("off", "no_events")):
            with redis_url() as url:
                rates["process"][side].append(run_once(url, flow, args.n))
            with redis_url() as url:
                bulk, single = enqueue_rates(url, side == "on", args.n)
            rates["map"][side].append(bulk)
            rates["delay"][side].append(single)
    print(json.dumps({"jobs": args.n, "repeat": args.repeat, **{
        m: {"jobs_per_s_on": round(statistics.median(r["on"])), "jobs_per_s_off": round(statistics.median(r["off"])),
            "cost": f"{statistics.median(1 - a / b for a, b in zip(r['on'], r['off'], strict=True)):.1%}"}
        for m, r in rates.items()}}, indent=1))


if __name__ == "__main__":
    main()
