"""Processing on a local 3-master Redis Cluster (3 replicas) with 12 queues, next to one
redis-server on the same machine, and the share of commands each master served.

Usage: python bench/cluster.py [--n 30000] [--repeat 3]
Starts its own servers on free loopback ports (tests/redis_groups.py). Each run enqueues
`n` no-op jobs spread over 12 queues (task.options(queue=q).map), then starts two
`taskq worker -c 16 --burst` processes on all 12 queues and times them from start to exit
(both startups included, the same on both deployments). The 12 queue names are picked so
that 4 queues hash to each master, as an operator spreading queues over masters would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from redis_groups import ClusterGroup  # noqa: E402
from redis_server import RedisServer  # noqa: E402

#: commands that are not taskq's: the benchmark's own reads and replication traffic
NOT_TASKQ = {"info", "replconf", "ping", "cluster|info", "cluster|slots", "cluster|shards", "command", "wait",
             "flushall", "config|get", "role"}


def balanced_queues(group: ClusterGroup, per_master: int = 4) -> list[str]:
    masters = {m.port: [] for m in group.masters()}  # type: dict[int, list[str]]
    for i in range(10_000):
        name = f"q{i}"
        port = group.master_for_key(f"taskq:{{{name}}}").port
        if len(masters[port]) < per_master:
            masters[port].append(name)
        if all(len(v) == per_master for v in masters.values()):
            return [q for qs in masters.values() for q in qs]
    raise RuntimeError("could not spread the queues")


def calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k.removeprefix("cmdstat_") not in NOT_TASKQ)


def run_once(url: str, queues: list[str], n: int, masters: list[redis.Redis],
             processes: int = 2) -> tuple[float, list[int]]:
    """n jobs over the queues, then `processes` burst workers timed from start to exit: (jobs/s,
    commands each master served meanwhile)."""
    env = {**os.environ, "TASKQ_URL": url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    enqueue = (f"import cluster_app\nqs = {queues!r}\n"
               f"for k, q in enumerate(qs):\n"
               f"    cluster_app.noop.options(queue=q).map(range(k, {n}, len(qs)))\n")
    subprocess.run([sys.executable, "-c", enqueue], env=env, cwd=HERE, check=True)
    before = [calls(m) for m in masters]
    cmd = [sys.executable, "-m", "taskq", "worker", "cluster_app:app", "-c", "16", "--burst",
           "--log-level", "error", *(a for q in queues for a in ("-q", q))]
    start = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, cwd=HERE) for _ in range(processes)]
    for p in procs:
        if p.wait() != 0:
            raise RuntimeError("a worker failed")
    elapsed = time.perf_counter() - start
    return n / elapsed, [calls(m) - b for m, b in zip(masters, before, strict=True)]


def idle_latency(url: str, queues: list[str], n: int = 240) -> tuple[float, float]:
    """p50 and p99 ms from .delay() to the body starting, for an idle worker on every queue:
    each job goes to the next queue (the next slot), after the previous one ran."""
    sys.path.insert(0, str(HERE))
    import cluster_app

    import taskq
    from taskq.log import configure

    configure("warning")
    cluster_app.app.configure(url=url)
    cluster_app.latencies.clear()
    worker = taskq.Worker(cluster_app.app, queues, concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        for i in range(n):
            cluster_app.stamp.options(queue=queues[i % len(queues)]).delay(time.perf_counter())
            deadline = time.monotonic() + 10
            while len(cluster_app.latencies) <= i and time.monotonic() < deadline:
                time.sleep(0.0002)
            time.sleep(0.005)  # idle again: blocked in Redis
    finally:
        worker.stop()
        thread.join(10)
    ms = sorted(x * 1000 for x in cluster_app.latencies)
    return statistics.median(ms), ms[int(len(ms) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    group, single = ClusterGroup(), RedisServer()
    try:
        queues = balanced_queues(group)
        masters = [m.client() for m in group.masters()]
        single_rates, cluster_rates, shares = [], [], []
        for _ in range(args.repeat):  # alternate, so drift on the machine hits both alike
            single.client().flushall()
            single_rates.append(run_once(single.url, queues, args.n, [single.client()])[0])
            group.reset()
            rate, per_master = run_once(group.url, queues, args.n, masters)
            cluster_rates.append(rate)
            shares.append([c / sum(per_master) for c in per_master])
        group.reset()
        cluster_latency = idle_latency(group.url, queues)
        single.client().flushall()
        single_latency = idle_latency(single.url, queues)
        share = [statistics.median(s[i] for s in shares) for i in range(len(masters))]
        print(json.dumps({
            "jobs": args.n, "queues": queues, "repeat": args.repeat,
            "single_jobs_per_s": round(statistics.median(single_rates)),
            "cluster_jobs_per_s": round(statistics.median(cluster_rates)),
            "idle_latency_ms_p50_p99": {"single": [round(x, 2) for x in single_latency],
                                        "cluster": [round(x, 2) for x in cluster_latency]},
            "command_share_per_master": [round(s, 3) for s in share],
            "worst_deviation_from_even": round(max(abs(s * len(share) - 1) for s in share), 3),
        }, indent=1))
    finally:
        group.stop()
        single.stop()


if __name__ == "__main__":
    main()
