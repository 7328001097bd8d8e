"""How processing scales with worker processes and with queues, on one redis-server and on a
local 3-master Redis Cluster, and how the Cluster's masters share the commands.

Usage: python bench/scaling.py [--n 20000] [--repeat 1]
Starts its own servers (tests/redis_groups.py). A run enqueues `n` no-op jobs spread over the
queues, then starts P `taskq worker -c 16 --burst` processes on all of them, timed from start to
exit (start-up included). Two series: P = 1, 2, 4 on 4 queues, and 1, 4, 16 queues with P = 2.
Queue names are taken round-robin from the three masters' slots, so k queues spread as evenly as
k allows. On this 2-core machine the workers, the servers and the producer share the cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from cluster import balanced_queues, run_once  # noqa: E402
from redis_groups import ClusterGroup  # noqa: E402
from redis_server import RedisServer  # noqa: E402

PROCESSES = (1, 2, 4)
QUEUES = (1, 4, 16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    group, single = ClusterGroup(), RedisServer()
    try:
        per_master = balanced_queues(group, per_master=6)  # 6 per master, master by master
        names = [per_master[m * 6 + i] for i in range(6) for m in range(3)][:max(QUEUES)]  # round-robin
        masters = [m.client() for m in group.masters()]
        plan = [(4, p) for p in PROCESSES] + [(q, 2) for q in QUEUES if q != 4]
        rows = []
        for queues_n, processes in plan:
            queues = names[:queues_n]
            single_rates, cluster_rates, shares = [], [], []
            for _ in range(args.repeat):
                single.client().flushall()
                single_rates.append(run_once(single.url, queues, args.n, [single.client()], processes)[0])
                group.reset()
                rate, per = run_once(group.url, queues, args.n, masters, processes)
                cluster_rates.append(rate)
                shares.append([round(c / max(1, sum(per)), 3) for c in per])
            rows.append({"queues": queues_n, "processes": processes,
                         "single_jobs_per_s": round(statistics.median(single_rates)),
                         "cluster_jobs_per_s": round(statistics.median(cluster_rates)),
                         "cluster_command_share": shares[len(shares) // 2]})
            print(json.dumps(rows[-1]), file=sys.stderr)
        print(json.dumps({"jobs": args.n, "repeat": args.repeat, "rows": rows}, indent=1))
    finally:
        group.stop()
        single.stop()


if __name__ == "__main__":
    main()
