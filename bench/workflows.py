"""What workflows cost: the same n no-op jobs sent as flows against plain jobs, in one run.

Usage: python bench/workflows.py [--n 20000] [--repeat 3]
Processing: bench/limits.py's run (a fresh redis-server, n jobs stored, two `taskq worker -c 16
--burst` processes timed from start to exit) for n jobs sent by map() ("off") and as groups of
100, chords of 99 members and a callback, and chains of 10 steps (each step runs only after the
one before it ended and the worker told it). Enqueue: in this process, the same shapes stored on
a fresh redis-server. "vs_off" is the median over rounds of each round's ratio to its "off" run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from _redis import redis_url
from limits import run_once

SHAPES = ("off", "group", "chord", "chain")


def enqueue_rate(url: str, shape: str, n: int) -> float:
    os.environ["TASKQ_URL"], os.environ["TASKQ_BENCH"] = url, shape
    import importlib

    import noop_app

    importlib.reload(noop_app)  # its app reads the URL and the shape at import
    start = time.perf_counter()
    noop_app.enqueue(n)
    rate = n / (time.perf_counter() - start)
    noop_app.app.broker.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    process: dict[str, list[float]] = {s: [] for s in SHAPES}
    enqueue: dict[str, list[float]] = {s: [] for s in SHAPES}
    for _ in range(args.repeat):
        for shape in SHAPES:
            with redis_url() as url:
                process[shape].append(run_once(url, shape, args.n))
            with redis_url() as url:
                enqueue[shape].append(enqueue_rate(url, shape, args.n))

    def row(rates: dict[str, list[float]], shape: str) -> dict[str, object]:
        ratios = (x / o for x, o in zip(rates[shape], rates["off"], strict=True))
        return {"jobs_per_s": round(statistics.median(rates[shape])), "vs_off": f"{statistics.median(ratios) - 1:+.0%}"}

    print(json.dumps({"jobs": args.n, "repeat": args.repeat,
                      "process": {s: row(process, s) for s in SHAPES},
                      "enqueue": {s: row(enqueue, s) for s in SHAPES}}, indent=1))


if __name__ == "__main__":
    main()
