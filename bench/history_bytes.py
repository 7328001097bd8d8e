"""Redis bytes of history (lua/lib/stats.lua) a busy queue keeps, with 1 and with 10 task names.

Usage: python bench/history_bytes.py

Writes one day of full minute buckets and its 24 hour buckets (every field of the queue and of
each task set, values of realistic size: an hour's sums 60 times a minute's) through a Lua call
per bucket, the way stats_flush writes them, then sums MEMORY USAGE of the keys on a fresh
redis-server. What is kept: minute buckets for 25 hours (STATS_MINUTE_TTL) and hour buckets for
8 days (STATS_TTL); before the rollup, minute buckets for 8 days.
"""

from __future__ import annotations

import redis
from _redis import redis_url

WRITE = """
local out = {}
for i = 2, #ARGV do
  for _, f in ipairs({'e', 'st', 's', 'f', 'r', 'd', 'rn', 'rt', 'rtm', 'w', 'wm'}) do
    out[#out + 1] = ARGV[i] .. f
    out[#out + 1] = ARGV[1]
  end
end
redis.call('HSET', KEYS[1], unpack(out))
redis.call('PEXPIRE', KEYS[1], 8 * 86400000)
"""
MINUTE_VALUE, HOUR_VALUE = 12345, 60 * 12345


def bucket_bytes(client: redis.Redis, tasks: int) -> tuple[int, int]:
    """A day's minute buckets' bytes and its hour buckets' bytes."""
    client.flushall()
    write = client.register_script(WRITE)
    prefixes = ["", *(f"t:myapp.tasks.task_number_{i}:" for i in range(tasks))]
    minute = 29_000_040  # on the hour
    minutes = [f"taskq:{{default}}:stats:{minute + m}" for m in range(1440)]
    hours = [f"taskq:{{default}}:stats:h:{minute // 60 + h}" for h in range(24)]
    for key in minutes:
        write(keys=[key], args=[MINUTE_VALUE, *prefixes])
    for key in hours:
        write(keys=[key], args=[HOUR_VALUE, *prefixes])

    def size(keys: list[str]) -> int:
        return sum(int(client.memory_usage(k) or 0) for k in keys)

    return size(minutes), size(hours)


def main() -> None:
    with redis_url() as url:
        client = redis.Redis.from_url(url)
        for tasks in (1, 10):
            day, hours = bucket_bytes(client, tasks)
            per_minute, per_hour = day // 1440, hours // 24
            kept = 25 * 60 * per_minute + 8 * 24 * per_hour
            print(f"{tasks:>2} task name(s): {per_minute} bytes per minute bucket, {per_hour} per hour bucket; "
                  f"a queue-day: {day:,} bytes of minutes + {hours:,} of hours; kept: {kept / 1e6:.2f} MB "
                  f"(25 h of minutes + 8 days of hours; before the rollup, 8 days of minutes: "
                  f"{8 * day / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
