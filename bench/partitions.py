"""Partitions (issue 24): what fair turns and partition caps cost, the Redis memory a partition
takes, and what fair=True does for small partitions behind a big one, in one run.

Usage: python bench/partitions.py [--n 20000] [--repeat 3] [--only processing,memory,fairness,commands]

processing: each run a fresh redis-server, n no-op jobs enqueued (one map() per partition), then
  two `taskq worker -c 16 --burst` processes (bench/partition_app.py). Configurations, alternated
  run by run: off (no partitions, plain queue); fair=True with 1, 100 and 10 000 partitions; 100
  partitions in a plain queue (the field alone); partition_max_running=1000 (a cap that never
  binds: its own cost) with 100 partitions, plain and fair, and with 10 000 partitions, fair.
  "steady" is n over the time from the first job taken to the queue empty (its depths polled every
  10 ms), "wall" includes the workers' start-up and exit (as bench/limits.py); "vs_off" is the
  median over rounds of each round's steady rate against its own "off" run.
memory: INFO used_memory before and after enqueuing n jobs (no worker), a fresh redis-server each:
  plain queue without partitions, fair with 1 and 10 000 partitions, plain with 10 000 partitions.
fairness: two `taskq worker -c 16` processes idle; then one partition enqueues 5 000 jobs of ~1 ms
  (a sleep), then 10 others 20 each. Wait = a job's start minus its enqueue time; reported: p50,
  p99 and max wait of the small partitions' jobs, and how many big jobs started before the last
  small job finished, with fair=True and fair=False (alternated, median over --repeat).
commands (only when asked): one run per configuration, Redis commands per job (INFO commandstats,
  a script's inner commands one by one) and the scripts' server time per job.
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
from typing import Any

import redis
from _redis import redis_url

import taskq

HERE = Path(__file__).resolve().parent
WORKER = [sys.executable, "-m", "taskq", "worker", "partition_app:app", "-c", "16", "--log-level", "error"]
#: configuration -> (partitions, fair, partition_max_running)
CONFIGS: dict[str, tuple[int, bool, int]] = {
    "off": (0, False, 0), "fair_1": (1, True, 0), "fair_100": (100, True, 0), "fair_10000": (10_000, True, 0),
    "parts_100": (100, False, 0), "cap_100": (100, False, 1000), "fair_cap_100": (100, True, 1000),
    "fair_cap_10000": (10_000, True, 1000),
}
BIG, SMALL, SMALL_JOBS = 5000, 10, 20


def app_env(url: str, fair: bool, cap: int = 0) -> dict[str, str]:
    return {**os.environ, "TASKQ_URL": url, "TASKQ_FAIR": "1" if fair else "0", "TASKQ_PART_CAP": str(cap),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}


def enqueue(env: dict[str, str], n: int, partitions: int) -> None:
    subprocess.run([sys.executable, "-c", f"import partition_app; partition_app.enqueue({n}, {partitions})"],
                   env=env, cwd=HERE, check=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (10 ms ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_once(url: str, config: str, n: int) -> dict[str, float]:
    """One run: steady and wall jobs/s, and CPU per job (µs) in the steady window: the two workers'
    and redis-server's together, and redis-server's alone."""
    partitions, fair, cap = CONFIGS[config]
    env = app_env(url, fair, cap)
    enqueue(env, n, partitions)
    broker = taskq.TaskQ(url).broker
    redis_pid = int(redis.Redis.from_url(url).info("server")["process_id"])
    start = time.perf_counter()
    procs = [subprocess.Popen([*WORKER, "--burst"], env=env, cwd=HERE) for _ in range(2)]
    pids = [redis_pid, *(p.pid for p in procs)]
    first: tuple[float, list[float]] | None = None
    while True:
        d = broker.depths("default")  # a fair queue's ready count includes its lanes
        now, cpu = time.perf_counter(), [cpu_seconds(pid) for pid in pids]
        if first is None and d.ready < n:
            first = now, cpu
        if d.ready + d.reserved + d.running + d.held + d.ordered == 0:
            break
        time.sleep(0.01)
    if any(p.wait() != 0 for p in procs):
        raise RuntimeError(f"a worker failed ({config})")
    wall = time.perf_counter() - start
    assert first is not None
    used = [b - a for a, b in zip(first[1], cpu, strict=True)]
    return {"steady": n / (now - first[0]), "wall": n / wall, "cpu_us": sum(used) / n * 1e6,
            "redis_cpu_us": used[0] / n * 1e6}


def processing(n: int, repeat: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {c: [] for c in CONFIGS}
    for _ in range(repeat):
        for config in CONFIGS:  # every configuration back to back: a round's drift hits all alike
            with redis_url() as url:
                runs[config].append(process_once(url, config, n))
            print(f"  {config}: {json.dumps({k: round(v) for k, v in runs[config][-1].items()})}", file=sys.stderr)
    off = runs["off"]

    def median(config: str, metric: str) -> float:
        return statistics.median(r[metric] for r in runs[config])

    def vs_off(config: str, metric: str) -> str:
        """The median over rounds of each round's figure against that round's "off" run."""
        ratios = (r[metric] / o[metric] for r, o in zip(runs[config], off, strict=True))
        return f"{statistics.median(ratios) - 1:+.1%}"

    return {c: {"steady_jobs_per_s": round(median(c, "steady")), "vs_off": vs_off(c, "steady"),
                "wall_jobs_per_s": round(median(c, "wall")), "wall_vs_off": vs_off(c, "wall"),
                "cpu_us_per_job": round(median(c, "cpu_us"), 1), "cpu_vs_off": vs_off(c, "cpu_us"),
                "redis_cpu_us_per_job": round(median(c, "redis_cpu_us"), 1),
                "redis_cpu_vs_off": vs_off(c, "redis_cpu_us")}
            for c in CONFIGS}


def commands(n: int, configs: tuple[str, ...] = ("off", "fair_1", "fair_100", "fair_10000", "cap_100")
             ) -> dict[str, Any]:
    """Redis commands per job while the workers run (INFO commandstats; a script's inner commands
    count one by one), and the scripts' server time per job: where a configuration's cost goes."""
    out = {}
    for config in configs:
        partitions, fair, cap = CONFIGS[config]
        with redis_url() as url:
            env = app_env(url, fair, cap)
            enqueue(env, n, partitions)
            client = redis.Redis.from_url(url)
            client.config_resetstat()
            procs = [subprocess.Popen([*WORKER, "--burst"], env=env, cwd=HERE) for _ in range(2)]
            if any(p.wait() != 0 for p in procs):
                raise RuntimeError(f"a worker failed ({config})")
            stats = {name.removeprefix("cmdstat_"): s for name, s in client.info("commandstats").items()}
        inner = {k: round(s["calls"] / n, 2) for k, s in sorted(stats.items(), key=lambda kv: -kv[1]["calls"])
                 if k not in ("evalsha", "config|resetstat") and s["calls"] / n >= 0.05}
        out[config] = {"commands_per_job": round(sum(inner.values()), 1),
                       "script_us_per_job": round(stats["evalsha"]["usec"] / n, 1), "by_command": inner}
    return out


def memory(n: int) -> dict[str, Any]:
    out = {}
    for config in ("off", "fair_1", "fair_10000", "parts_10000"):
        partitions, fair, _ = CONFIGS.get(config, (10_000, False, 0))
        with redis_url() as url:
            client = redis.Redis.from_url(url)
            before = int(client.info("memory")["used_memory"])
            enqueue(app_env(url, fair), n, partitions)
            after = int(client.info("memory")["used_memory"])
            out[config] = {"bytes_per_queued_job": round((after - before) / n), "keys": client.dbsize()}
    return out


def fairness_once(url: str, fair: bool) -> dict[str, float]:
    env = app_env(url, fair)
    client = redis.Redis.from_url(url)
    procs = [subprocess.Popen(WORKER, env=env, cwd=HERE) for _ in range(2)]
    try:
        code = "import partition_app as a; a.work.options(partition='warm').starmap([('warm', 0)] * 64)"
        subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, check=True)
        while client.llen("bench:ledger") < 64:  # both workers up and taking jobs
            time.sleep(0.05)
        time.sleep(0.5)
        client.delete("bench:ledger")
        code = ("import partition_app as a, time\n"
                f"a.work.options(partition='big').starmap([('big', time.time())] * {BIG})\n"
                f"for p in range({SMALL}):\n"
                f"    a.work.options(partition=f's{{p}}').starmap([(f's{{p}}', time.time())] * {SMALL_JOBS})\n")
        subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, check=True)
        while client.llen("bench:ledger") < BIG + SMALL * SMALL_JOBS:
            time.sleep(0.05)
        rows = [line.decode().split() for line in client.lrange("bench:ledger", 0, -1)]
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    small = [(float(s), float(e), float(q)) for part, s, e, q in rows if part != "big"]
    waits = sorted(1000 * (s - q) for s, _, q in small)
    last_small_end = max(e for _, e, _ in small)
    return {"small_wait_p50_ms": round(statistics.median(waits), 1),
            "small_wait_p99_ms": round(waits[int(0.99 * (len(waits) - 1))], 1),
            "small_wait_max_ms": round(waits[-1], 1),
            "big_started_before_last_small_end": sum(1 for part, s, _, _ in rows
                                                     if part == "big" and float(s) < last_small_end)}


def fairness(repeat: int) -> dict[str, Any]:
    got: dict[str, list[dict[str, float]]] = {"fair": [], "not_fair": []}
    for _ in range(repeat):
        for name in got:
            with redis_url() as url:
                got[name].append(fairness_once(url, name == "fair"))
            print(f"  {name}: {got[name][-1]}", file=sys.stderr)
    return {name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in got.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="processing,memory,fairness")
    args = parser.parse_args()
    parts = args.only.split(",")
    out: dict[str, Any] = {"jobs": args.n, "repeat": args.repeat}
    if "memory" in parts:
        out["memory"] = memory(args.n)
    if "fairness" in parts:
        out["fairness"] = {"big_jobs": BIG, "small_partitions": SMALL, "jobs_each": SMALL_JOBS, **fairness(args.repeat)}
    if "processing" in parts:
        out["processing"] = processing(args.n, args.repeat)
    if "commands" in parts:
        out["commands"] = commands(args.n)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
