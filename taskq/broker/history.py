"""RedisBroker's history: the per-minute and per-hour hashes lua/lib/stats.lua writes, read as
StatsMinute records."""

from __future__ import annotations

from collections.abc import Callable

from taskq.broker.client import Connection, integer
from taskq.broker.keys import QueueKeys
from taskq.broker.records import StatsMinute

#: lua/lib/stats.lua's field of each StatsMinute counter, in StatsMinute's order
FIELDS = {"enqueued": "e", "started": "st", "succeeded": "s", "failed": "f", "retried": "r", "dead": "d",
          "runs": "rn", "runtime_ms": "rt", "runtime_ms_max": "rtm", "wait_ms": "w", "wait_ms_max": "wm"}
#: buckets read per pipeline (a day of minutes: one round trip, not huge)
CHUNK = 1440


class History:
    """The history role; mixed into RedisBroker, which provides these attributes."""

    conn: Connection

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def stats(self, queue: str, first_minute: int, last_minute: int, task: str | None = None) -> list[StatsMinute]:
        k = self.qk(queue)
        return self._buckets(range(first_minute, last_minute + 1), k.stats, 1, task)

    def stats_hours(self, queue: str, first_hour: int, last_hour: int, task: str | None = None) -> list[StatsMinute]:
        k = self.qk(queue)
        return self._buckets(range(first_hour, last_hour + 1), k.stats_hour, 60, task)

    def _buckets(self, numbers: range, key: Callable[[int], str], minutes: int,
                 task: str | None) -> list[StatsMinute]:
        """The buckets `key(n)` that exist, as StatsMinute records at minute n * `minutes`."""
        prefix = f"t:{task}:" if task else ""
        names = [prefix + f for f in FIELDS.values()]
        out = []
        for start in range(0, len(numbers), CHUNK):
            chunk = numbers[start:start + CHUNK]
            with self.conn.errors():
                pipe = self.conn.client.pipeline(transaction=False)
                for n in chunk:
                    pipe.hmget(key(n), names)
                replies = pipe.execute()
            for n, values in zip(chunk, replies, strict=True):
                if any(v is not None for v in values):
                    counts = {name: integer(v) or 0 for name, v in zip(FIELDS, values, strict=True)}
                    out.append(StatsMinute(n * minutes, **counts))
        return out
