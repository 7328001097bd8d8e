"""The event loop's longest stall while an asyncio producer enqueues jobs and awaits their results.

Usage: python bench/async_stall.py [--n 1000] [--repeat 3]
A fresh redis-server and one `taskq worker -c 16` process (so the worker does not share this
process's interpreter lock); then, per round, a ticker coroutine (asyncio.sleep(0.001) in a loop)
runs while `n` delay_async calls are gathered and their `n` result_async awaited. Prints the
longest gap between ticks (a blocking call would show as a whole round trip or more) and the
enqueue rate of the gather. With --freeze, gc.freeze() runs first: most of a stall is Python's
cyclic collector walking every object of the process during the burst of allocations.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _redis import redis_url

HERE = Path(__file__).resolve().parent


async def one_round(n: int) -> tuple[float, float, float]:
    import noop_app

    gaps: list[float] = []
    stop = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    start = time.perf_counter()
    jobs = await asyncio.gather(*(noop_app.noop.delay_async(i) for i in range(n)))
    enqueued = time.perf_counter() - start
    during_enqueue = max(gaps)
    await asyncio.gather(*(j.result_async(timeout=60) for j in jobs))
    stop.set()
    await ticker
    await noop_app.app.aclose()
    return during_enqueue, max(gaps), n / enqueued


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--freeze", action="store_true",
                        help="gc.freeze() first: the collector then skips the objects of start-up")
    args = parser.parse_args()
    with redis_url() as url:
        os.environ["TASKQ_URL"] = url
        sys.path.insert(0, str(HERE))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        worker = subprocess.Popen([sys.executable, "-m", "taskq", "worker", "noop_app:app", "-c", "16",
                                   "--log-level", "error"], env=env, cwd=HERE)
        try:
            import noop_app  # noqa: F401  (imported before the freeze, as an app's modules are)

            if args.freeze:
                gc.freeze()
            rounds = [asyncio.run(one_round(args.n)) for _ in range(args.repeat)]
        finally:
            worker.terminate()
            worker.wait(30)
    print(json.dumps({"jobs": args.n, "gc_freeze": args.freeze,
                      "longest_stall_ms": [round(g * 1000, 1) for _, g, _ in rounds],
                      "during_enqueue_ms": [round(g * 1000, 1) for g, _, _ in rounds],
                      "gather_enqueue_per_s": [round(r) for _, _, r in rounds]}))


if __name__ == "__main__":
    main()
