"""Enqueue -> start latency for an idle worker on a real Redis.

Usage: python bench/idle_latency.py redis://127.0.0.1:PORT/0 [N]
Starts a worker thread, enqueues N jobs one at a time (each after the previous
one ran, so the worker is idle and blocked in Redis), and prints p50/p99 in ms.
"""

from __future__ import annotations

import statistics
import sys
import threading
import time

import taskq
from taskq.log import configure

app = taskq.TaskQ(sys.argv[1] if len(sys.argv) > 1 else None)
started: list[float] = []
ran = threading.Event()


@app.task
def stamp() -> None:
    started.append(time.perf_counter())
    ran.set()


def main() -> None:
    configure("warning")
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    worker = taskq.Worker(app, concurrency=1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    time.sleep(0.5)
    latencies = []
    for _ in range(n):
        ran.clear()
        time.sleep(0.01)  # let the worker go back to its blocking wait
        t0 = time.perf_counter()
        stamp.delay()
        ran.wait(5)
        latencies.append((started[-1] - t0) * 1000)
    latencies.sort()
    p50 = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"idle enqueue->start over {n} jobs: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    worker.stop()
    thread.join()


if __name__ == "__main__":
    main()
