"""Redis's own cost per processed job: commands and CPU time (INFO commandstats) and memory.

Usage: python bench/redis_per_job.py [N]
Starts a fresh redis-server on a free loopback port, enqueues N no-op jobs (`map`), resets the
server's stats, runs one in-process worker (-c 8) until the queue is empty, then prints the
calls of the most used commands per job, the server's CPU time per job and memory per job.
Run it in two trees (PYTHONPATH=<tree>) to compare what a change costs Redis.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import redis

import taskq


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        app = taskq.TaskQ(url)

        @app.task
        def noop(i: int) -> None: ...

        noop.map(range(n))
        client.config_resetstat()
        started = time.perf_counter()
        taskq.Worker(app, ["default"], concurrency=8, burst=True).run()
        elapsed = time.perf_counter() - started
        stats = client.info("commandstats")
        usec = sum(v["usec"] for v in stats.values())
        calls = sum(v["calls"] for v in stats.values())
        top = sorted(((k.removeprefix("cmdstat_"), v["calls"] / n) for k, v in stats.items()), key=lambda kv: -kv[1])
        print(" ".join(f"{name}={per:.2f}" for name, per in top[:14]))
        print(f"{n / elapsed:.0f} jobs/s in-process; Redis {usec / n:.1f} us/job, {calls / n:.2f} commands/job; "
              f"memory {client.info('memory')['used_memory'] / n:.0f} B/job")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
