"""RedisBroker's history: the per-minute hashes lua/lib/stats.lua writes, read as StatsMinute records."""

from __future__ import annotations

from taskq.broker.client import Connection, integer
from taskq.broker.keys import QueueKeys
from taskq.broker.records import StatsMinute

#: lua/lib/stats.lua's field of each StatsMinute counter, in StatsMinute's order
FIELDS = {"enqueued": "e", "started": "st", "succeeded": "s", "failed": "f", "retried": "r", "dead": "d",
          "runs": "rn", "runtime_ms": "rt", "runtime_ms_max": "rtm", "wait_ms": "w", "wait_ms_max": "wm"}
#: minutes read per pipeline (7 days are 10080 keys: a few round trips, none huge)
CHUNK = 1440


class History:
    """The history role; mixed into RedisBroker, which provides these attributes."""

    conn: Connection

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def stats(self, queue: str, first_minute: int, last_minute: int, task: str | None = None) -> list[StatsMinute]:
        k = self.qk(queue)
        prefix = f"t:{task}:" if task else ""
        names = [prefix + f for f in FIELDS.values()]
        out = []
        for start in range(first_minute, last_minute + 1, CHUNK):
            minutes = range(start, min(start + CHUNK, last_minute + 1))
            with self.conn.errors():
                pipe = self.conn.client.pipeline(transaction=False)
                for minute in minutes:
                    pipe.hmget(k.stats(minute), names)
                replies = pipe.execute()
            for minute, values in zip(minutes, replies, strict=True):
                if any(v is not None for v in values):
                    counts = {name: integer(v) or 0 for name, v in zip(FIELDS, values, strict=True)}
                    out.append(StatsMinute(minute, **counts))
        return out
