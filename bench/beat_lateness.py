"""Cron firing lateness: tick time -> the fired job's enqueue, both on Redis's clock.

Usage: python bench/beat_lateness.py [--url URL] [--seconds S] [--beats B] [--schedules K]
Runs B `taskq beat` processes (a leader and stand-bys) with K schedules firing every second
for S seconds, then reads every fired job record: lateness = enqueued_ms - tick ms.
Without --url it starts its own redis-server on a free loopback port.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis
from _redis import redis_url

HERE = Path(__file__).parent


def measure(url: str, seconds: float, beats: int, schedules: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    client.flushall()
    env = {**os.environ, "TASKQ_URL": url, "BENCH_SCHEDULES": str(schedules),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-m", "taskq", "beat", "beatbench:app", "--log-level", "warning"],
                              cwd=HERE, env=env) for _ in range(beats)]
    time.sleep(seconds)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)
    late = []
    for key in client.scan_iter(match="taskq:{default}:job:cron:*", count=1000):
        tick = int(key.decode().rsplit(":", 1)[1])
        late.append(int(client.hget(key, "enqueued_ms")) - tick)
    late.sort()
    return {"fired": len(late), "p50": statistics.median(late), "p99": late[max(0, int(len(late) * 0.99) - 1)],
            "max": late[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--beats", type=int, default=2)
    parser.add_argument("--schedules", type=int, default=1)
    args = parser.parse_args()
    with redis_url(args.url) as url:
        r = measure(url, args.seconds, args.beats, args.schedules)
    print(f"beat lateness, {args.beats} beats, {args.schedules} per-second schedule(s), {args.seconds:.0f} s: "
          f"{r['fired']:.0f} fired, p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms")


if __name__ == "__main__":
    main()
