"""Redis bytes per queue-day of history (lua/lib/stats.lua), with 1 and with 10 task names.

Usage: python bench/history_bytes.py

Writes one day of full minute buckets (every field of the queue and of each task set, values of
realistic size) through the same script path a busy queue takes (settle's stats_flush is the
only writer; here a Lua call per minute writes what it would), then sums MEMORY USAGE of the
day's keys on a fresh redis-server.
"""

from __future__ import annotations

import redis
from _redis import redis_url

FIELDS = ("e", "st", "s", "f", "r", "d", "rn", "rt", "rtm", "w", "wm")
WRITE = """
local out = {}
for _, p in ipairs(ARGV) do
  for _, f in ipairs({'e', 'st', 's', 'f', 'r', 'd', 'rn', 'rt', 'rtm', 'w', 'wm'}) do
    out[#out + 1] = p .. f
    out[#out + 1] = 12345
  end
end
redis.call('HSET', KEYS[1], unpack(out))
redis.call('PEXPIRE', KEYS[1], 8 * 86400000)
"""


def day_bytes(client: redis.Redis, tasks: int) -> int:
    client.flushall()
    write = client.register_script(WRITE)
    prefixes = ["", *(f"t:myapp.tasks.task_number_{i}:" for i in range(tasks))]
    minute = 29_000_000
    for m in range(1440):
        write(keys=[f"taskq:{{default}}:stats:{minute + m}"], args=prefixes)
    return sum(int(client.memory_usage(f"taskq:{{default}}:stats:{minute + m}") or 0) for m in range(1440))


def main() -> None:
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        for tasks in (1, 10):
            n = day_bytes(client, tasks)
            print(f"{tasks:>2} task name(s): {n:,} bytes per queue-day ({n // 1440} per minute bucket), "
                  f"{8 * n / 1e6:.1f} MB kept over 8 days")


if __name__ == "__main__":
    main()
