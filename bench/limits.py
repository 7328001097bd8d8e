"""Processing throughput with each flow-control feature switched on, against off, in one run.

Usage: python bench/limits.py [--n 20000] [--repeat 3]
Each run: a fresh redis-server, `n` no-op jobs enqueued (task.map), then two
`taskq worker -c 16 --burst` processes, timed from start to exit (start-up included, the same
for every configuration); "vs_off" is the median over rounds of each round's ratio to its own
"off" run. Configurations, alternated run by run: off; the queue's rate_limit far
above the achievable rate; the queue's max_running equal to the total concurrency (32); max_ready
far above n; the same rate limit and cap as the task's own (task_rate, task_cap); ordering keys
over 100 keys (order).
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

from _redis import redis_url

HERE = Path(__file__).resolve().parent
CONFIGS = ("off", "rate", "cap", "ready", "task_rate", "task_cap", "order")


def run_once(url: str, flow: str, n: int) -> float:
    env = {**os.environ, "TASKQ_URL": url, "TASKQ_BENCH": flow,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", f"import noop_app; noop_app.enqueue({n})"], env=env, cwd=HERE,
                   check=True)
    cmd = [sys.executable, "-m", "taskq", "worker", "noop_app:app", "-c", "16", "--burst", "--log-level", "error"]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, cwd=HERE) for _ in range(2)]
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"a worker failed ({flow})")
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(CONFIGS), help="configurations to run, comma-separated")
    args = parser.parse_args()
    configs = ["off", *(c for c in args.only.split(",") if c != "off")]
    rates: dict[str, list[float]] = {c: [] for c in configs}
    for _ in range(args.repeat):
        for flow in configs:
            with redis_url() as url:
                rates[flow].append(run_once(url, flow, args.n))
    # each round runs every configuration back to back: its ratios to that round's "off" cancel
    # the machine's drift between rounds; the median ratio is reported
    print(json.dumps({"jobs": args.n, "repeat": args.repeat, **{
        c: {"jobs_per_s": round(statistics.median(r)),
            "vs_off": f"{statistics.median(x / o for x, o in zip(r, rates['off'], strict=True)) - 1:+.0%}"}
        for c, r in rates.items()}}, indent=1))


if __name__ == "__main__":
    main()
