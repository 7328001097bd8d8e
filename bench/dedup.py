"""What dedup windows and debounce cost at enqueue: `.delay()` calls per second with no key, with
a key, a key and key_ttl=, a key and debounce= (each call a new key: a new job), and debounce= on
one key (each call moves the same job and replaces its message), in one run on a fresh
redis-server; and the script's own time inside Redis per call (INFO commandstats). Each variant
runs in turn, `rounds` times, and its best round is reported (the machine is shared); Redis is
flushed between rounds.

    .venv/bin/python bench/dedup.py [N per round] [rounds]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import redis
from _redis import redis_url

import taskq


def rate(calls: list[Callable[[int], object]]) -> float:
    """Calls per second of calls[i](i) in turn."""
    start = time.perf_counter()
    for i, call in enumerate(calls):
        call(i)
    return len(calls) / (time.perf_counter() - start)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with redis_url() as url:
        app = taskq.TaskQ(url)

        @app.task
        def noop(i: int) -> None: ...

        # the calls' options are made before the clock starts: the cost measured is the enqueue's
        variants: dict[str, Callable[[], list[Callable[[int], object]]]] = {
            "no key": lambda: [noop.delay] * n,
            "key=": lambda: [noop.options(key=f"k:{i}").delay for i in range(n)],
            "key= key_ttl=60": lambda: [noop.options(key=f"k:{i}", key_ttl=60).delay for i in range(n)],
            "key= debounce=5 (a new key each call)": lambda: [
                noop.options(key=f"k:{i}", debounce=5, debounce_max=60).delay for i in range(n)],
            "key= debounce=5 (one key: each call moves its job)": lambda: [
                noop.options(key="k", debounce=5, debounce_max=60).delay] * n,
            "key= (one key: each call returns its job)": lambda: [noop.options(key="k").delay] * n,
        }
        client = redis.Redis.from_url(url)
        noop.delay(0)  # loads the scripts
        best = dict.fromkeys(variants, 0.0)
        inside = dict.fromkeys(variants, float("inf"))
        for _ in range(rounds):
            for name, make in variants.items():
                client.flushdb()
                app._known_queues.clear()  # registered again after the flush
                noop.delay(0)
                calls = make()
                client.config_resetstat()
                best[name] = max(best[name], rate(calls))
                stats = client.info("commandstats").get("cmdstat_evalsha", {})
                inside[name] = min(inside[name], float(stats.get("usec_per_call", 0)))
        print(f"{n} calls per round, best of {rounds} rounds, one process, sequential .delay():")
        base = best["key="]
        for name, per_s in best.items():
            print(f"  {name:<52} {per_s:>8,.0f} calls/s  {per_s / base:>5.0%} of key=  "
                  f"enqueue.lua {inside[name]:.1f} µs in Redis")


if __name__ == "__main__":
    main()
