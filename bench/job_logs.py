"""What job logs and kept arguments cost: processing throughput with a task that logs 0, 1 or 10
lines per job (current_job().log()), and with keep_args 0 against 1000, in one run; and the Redis
bytes of a succeeded job's record with and without its message, and of its log.

Usage: python bench/job_logs.py [--n 20000] [--repeat 3]
Processing: a fresh redis-server, n jobs (one 100-character argument each) enqueued with map(),
two `taskq worker -c 16 --burst --log-level error` processes timed from start to exit (as
bench/limits.py). Each round runs every configuration back to back; "vs_base" is the median over
rounds of its rate against that round's base (0 lines, keep_args 0). Bytes: MEMORY USAGE of 200
succeeded records (and of their log lists) on a fresh server.
This file is also the workers' app: $TASKQ_BENCH_LINES and $TASKQ_BENCH_KEEP_ARGS configure it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import taskq

HERE = Path(__file__).resolve().parent
LINES = int(os.environ.get("TASKQ_BENCH_LINES", "0"))
app = taskq.TaskQ(os.environ.get("TASKQ_URL"))
app.queue("default", keep_args=int(os.environ.get("TASKQ_BENCH_KEEP_ARGS", "0")))


@app.task
def work(payload: str) -> None:
    for i in range(LINES):
        taskq.current_job().log(f"step {i} of {payload[:20]}")


#: (name, lines per job, keep_args)
CONFIGS = (("base", 0, 0), ("1_line", 1, 0), ("10_lines", 10, 0), ("keep_args_1000", 0, 1000))


def run_once(url: str, lines: int, keep_args: int, n: int) -> float:
    env = {**os.environ, "TASKQ_URL": url, "TASKQ_BENCH_LINES": str(lines), "TASKQ_BENCH_KEEP_ARGS": str(keep_args),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", f"import job_logs as b; b.work.map([('x' * 100,)] * {n})"], env=env,
                   cwd=HERE, check=True)
    cmd = [sys.executable, "-m", "taskq", "worker", "job_logs:app", "-c", "16", "--burst", "--log-level", "error"]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, cwd=HERE) for _ in range(2)]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError("a worker failed")
    return n / (time.perf_counter() - start)


def record_bytes(url: str, lines: int, keep_args: int) -> dict[str, float]:
    """Mean MEMORY USAGE of 200 succeeded records (with their keys) and of their log lists."""
    global LINES
    LINES = lines
    bench = taskq.TaskQ(url)
    bench.queue("default", keep_args=keep_args)
    bench.tasks.clear()
    task = bench.task(name="work")(work.fn)
    jobs = task.map([("x" * 100,)] * 200)
    taskq.Worker(bench, concurrency=4, burst=True).run()
    client = bench.broker.conn.client  # type: ignore[attr-defined]
    k = bench.broker.keys.queue("default")  # type: ignore[attr-defined]
    record = statistics.mean(client.memory_usage(k.job(j.id)) or 0 for j in jobs)
    log = statistics.mean(client.memory_usage(k.logs(j.id)) or 0 for j in jobs)
    return {"record_bytes": round(record), "log_bytes": round(log)}


def main() -> None:
    from _redis import redis_url

    from taskq.log import configure

    configure("error")  # the in-process workers of record_bytes() write no lines
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rates: dict[str, list[float]] = {name: [] for name, _, _ in CONFIGS}
    for _ in range(args.repeat):
        for name, lines, keep in CONFIGS:
            with redis_url() as url:
                rates[name].append(run_once(url, lines, keep, args.n))
    sizes = {}
    for name, lines, keep in (("keep_args_0", 0, 0), ("keep_args_1000", 0, 1000), ("10_lines", 10, 0)):
        with redis_url() as url:
            sizes[name] = record_bytes(url, lines, keep)
    print(json.dumps({"jobs": args.n, "repeat": args.repeat, "processing": {
        name: {"jobs_per_s": round(statistics.median(r)),
               "vs_base": f"{statistics.median(x / b for x, b in zip(r, rates['base'], strict=True)) - 1:+.0%}"}
        for name, r in rates.items()}, "bytes_per_succeeded_job": sizes}, indent=1))


if __name__ == "__main__":
    main()
