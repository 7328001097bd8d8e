"""100 000 distinct partitions in one fair queue with a cap per partition: enqueue (one map() with a
partition per item), process with two in-process workers, and what is left in Redis after.

Usage: python bench/partitions_100k.py [--n 100000]
"""

from __future__ import annotations

import argparse
import threading
import time

import redis
from _redis import redis_url

import taskq
from taskq.log import configure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    n = parser.parse_args().n
    configure("warning")  # a line per job would be what is measured
    with redis_url() as url:
        app = taskq.TaskQ(url)
        app.queue("hosts", fair=True, partition_max_running=2)

        @app.task(queue="hosts")
        def deliver(i: int) -> None: ...

        app.register_queues(["hosts"])
        client = redis.Redis.from_url(url)
        before = client.info("memory")["used_memory"]
        start = time.perf_counter()
        deliver.map(range(n), partition=lambda i: f"host-{i}")
        took = time.perf_counter() - start
        depths = app.broker.depths("hosts")
        per_job = (client.info("memory")["used_memory"] - before) / n
        print(f"enqueued {n} jobs of {n} partitions in {took:.1f}s ({n / took:,.0f}/s): ready {depths.ready}, "
              f"partitions {depths.partitions}, {per_job:.0f} B of Redis per queued job")
        start = time.perf_counter()
        workers = [taskq.Worker(app, ["hosts"], concurrency=16, burst=True) for _ in range(2)]
        threads = [threading.Thread(target=w.run) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        took = time.perf_counter() - start
        print(f"processed {sum(w.processed for w in workers)} in {took:.1f}s ({n / took:,.0f}/s, "
              "two in-process workers -c 16)")
        left = list(client.scan_iter(match="*:part:*", count=10_000))
        base = "taskq:{hosts}"
        rings = sum(client.zcard(f"{base}:ring:{p}") for p in range(10))
        print(f"after: {app.broker.depths('hosts')}; partition keys left {len(left)}, blocked "
              f"{client.scard(base + ':blocked')}, backlog {client.zcard(base + ':backlog')}, in turns {rings}")


if __name__ == "__main__":
    main()
