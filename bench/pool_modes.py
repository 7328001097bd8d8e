"""Threads against worker processes: what `-p` (a supervisor, which can enforce a sync task's
timeout) costs against the default single process of threads (which cannot).

Usage: python bench/pool_modes.py [--n 20000] [--sleep-n 4000] [--sleep-ms 10] [--repeat 3]
Each run: a fresh redis-server, the jobs enqueued (task.map), then one `taskq worker` in one of
the modes below, stopped with SIGTERM once every job is done. Reported per mode, median over the
rounds (the modes alternate within a round): jobs/s from the worker's start to the last job
(start-up included), jobs/s once 5 % were done (steady state), and the resident memory of the
worker's processes at the end (the supervisor and its children with -p). Workloads: no-op jobs,
and jobs that sleep --sleep-ms (I/O-bound work: the slots, not the CPU, are the limit).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _redis import redis_url

import taskq

HERE = Path(__file__).resolve().parent
#: mode -> worker options; 16 slots each except "p2_c16"
MODES = {"threads_c16": ["-c", "16"], "p2_c8": ["-p", "2", "-c", "8"], "p2_c16": ["-p", "2", "-c", "16"]}

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))


@app.task
def noop(i: int) -> None:
    return None


@app.task
def nap(ms: float) -> None:
    time.sleep(ms / 1000)


def enqueue(task: str, n: int, sleep_ms: float) -> None:
    if task == "noop":
        noop.map(range(n))
    else:
        nap.map([sleep_ms] * n)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, in MiB (Linux /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_once(url: str, mode: str, task: str, n: int, sleep_ms: float) -> dict[str, float]:
    env = {**os.environ, "TASKQ_URL": url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    bench_app = taskq.TaskQ(url)
    subprocess.run([sys.executable, "-c", f"import pool_modes; pool_modes.enqueue({task!r}, {n}, {sleep_ms})"],
                   env=env, cwd=HERE, check=True)
    cmd = [sys.executable, "-m", "taskq", "worker", "pool_modes:app", *MODES[mode], "--log-level", "error"]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=HERE)
    steady_t = steady_left = None
    try:
        while True:
            d = bench_app.broker.depths("default")
            left = d.ready + d.running + d.reserved + d.scheduled
            now = time.perf_counter()
            if steady_t is None and left <= 0.95 * n:
                steady_t, steady_left = now, left
            if left == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited early ({mode})")
            time.sleep(0.01)
        done = time.perf_counter()
        memory = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert steady_t is not None and steady_left is not None
    return {"jobs_per_s": n / (done - start), "steady_jobs_per_s": steady_left / max(done - steady_t, 1e-9),
            "rss_mb": memory}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000, help="no-op jobs per run")
    parser.add_argument("--sleep-n", type=int, default=4000, help="sleeping jobs per run")
    parser.add_argument("--sleep-ms", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(MODES), help="modes to run, comma-separated")
    args = parser.parse_args()
    modes = args.only.split(",")
    workloads = {"noop": args.n, "nap": args.sleep_n}
    runs: dict[str, dict[str, list[dict[str, float]]]] = {w: {m: [] for m in modes} for w in workloads}
    for _ in range(args.repeat):
        for task, n in workloads.items():
            for mode in modes:
                with redis_url() as url:
                    runs[task][mode].append(run_once(url, mode, task, n, args.sleep_ms))
    report: dict[str, object] = {"cpus": os.cpu_count(), "repeat": args.repeat, "noop_jobs": args.n,
                                 "nap_jobs": args.sleep_n, "nap_ms": args.sleep_ms}
    for task, by_mode in runs.items():
        report[task] = {mode: {key: round(statistics.median(r[key] for r in rs), 1) for key in rs[0]}
                        for mode, rs in by_mode.items()}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
