"""Cron firing lateness: tick time -> the fired job's enqueue, both on Redis's clock.

Usage: python bench/beat_lateness.py [--url URL] [--seconds S] [--beats B] [--schedules K] [--stored]
Runs B `taskq beat` processes (a leader and stand-bys) with K schedules firing every second
for S seconds, then reads every fired job record: lateness = enqueued_ms - tick ms (ticks of
the first 2 s, start and catch-up, left out). The
schedules are declared in code (cron "* * * * * *"), or with --stored stored at run time
(app.schedules.upsert, every=1). Redis time: the server's own CPU time in commands over the
run (INFO commandstats), per fired tick. Without --url it starts its own redis-server.
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


def store(url: str, schedules: int) -> None:
    """K schedules stored at run time, as an app's users would (every second)."""
    import taskq

    app = taskq.TaskQ(url)

    @app.task
    def tick(n: int) -> None: ...

    for i in range(schedules):
        app.schedules.upsert(f"s{i}", tick, every=1, args=(i,))


def redis_usec(client: redis.Redis) -> int:
    return sum(int(v["usec"]) for k, v in client.info("commandstats").items() if k.startswith("cmdstat_"))


def measure(url: str, seconds: float, beats: int, schedules: int, stored: bool = False) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    client.flushall()
    if stored:
        store(url, schedules)
    client.config_resetstat()
    seconds_, micros = client.time()
    warm = int(seconds_) * 1000 + int(micros) // 1000 + 2000  # ticks of the first 2 s (start, catch-up) not counted
    env = {**os.environ, "TASKQ_URL": url, "BENCH_SCHEDULES": str(schedules), "BENCH_STORED": "1" if stored else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-m", "taskq", "beat", "beatbench:app", "--log-level", "warning"],
                              cwd=HERE, env=env) for _ in range(beats)]
    time.sleep(seconds)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)
    usec = redis_usec(client)
    late, total = [], 0
    for key in client.scan_iter(match="taskq:{default}:job:cron:*", count=1000):
        tick = int(key.decode().rsplit(":", 1)[1])
        total += 1
        if tick < warm:
            continue
        late.append(int(client.hget(key, "enqueued_ms")) - tick)
    late.sort()
    return {"fired": len(late), "p50": statistics.median(late), "p99": late[max(0, int(len(late) * 0.99) - 1)],
            "max": late[-1], "redis_us_per_tick": usec / max(1, total), "redis_ms_per_s": usec / 1000 / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--beats", type=int, default=2)
    parser.add_argument("--schedules", type=int, default=1)
    parser.add_argument("--stored", action="store_true", help="store the schedules at run time")
    args = parser.parse_args()
    with redis_url(args.url) as url:
        r = measure(url, args.seconds, args.beats, args.schedules, args.stored)
    kind = "stored" if args.stored else "code"
    print(f"beat lateness, {args.beats} beats, {args.schedules} per-second {kind} schedule(s), {args.seconds:.0f} s: "
          f"{r['fired']:.0f} fired, p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms, max {r['max']:.0f} ms; "
          f"Redis {r['redis_us_per_tick']:.1f} us per fired tick, {r['redis_ms_per_s']:.1f} ms per second")


if __name__ == "__main__":
    main()
