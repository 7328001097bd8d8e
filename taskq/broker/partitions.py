"""Partitions on Redis (lua/lib/part.lua): a mixin of RedisBroker. What app.queue() declares for a
queue's partitions, one partition's own limits, pause and backoff (ops/partition.lua), and what
Redis has of them; every key is in the queue's slot."""

from __future__ import annotations

from typing import Any

from taskq.broker.client import Connection, text
from taskq.broker.keys import QueueKeys
from taskq.broker.records import PartitionLimits, PartitionState


def _int(value: Any) -> int | None:
    raw = text(value)
    return None if raw is None or raw == "" else int(float(raw))


class Partitions:
    """The partitions role; mixed into RedisBroker, which provides these attributes."""

    conn: Connection

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def set_partitioning(self, queue: str, fair: bool, limits: PartitionLimits | None) -> None:
        """Whether the queue is fair, and the limits every partition has unless its own (None: none).
        One slot: one transaction."""
        k = self.qk(queue)
        fields: dict[str, int] = {}
        if limits is not None:
            if limits.max_running:
                fields["max_running"] = limits.max_running
            if limits.rate is not None:
                fields["rate_n"], fields["rate_window"] = limits.rate
            if limits.adaptive is not None:
                fields["astart"], fields["amax"] = limits.adaptive
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=True)
            if fair:
                pipe.set(k.fair, "1")
            else:
                pipe.delete(k.fair)
            pipe.delete(k.partition_limits)
            if fields:
                pipe.hset(k.partition_limits, mapping=fields)
            pipe.execute()

    def limit_partition(self, queue: str, partition: str, max_running: int | None,
                        rate: tuple[int, int] | None) -> None:
        """The partition's own limits (None: the queue's again)."""
        n, window = rate or ("", "")
        self.conn.run("partition", [self.qk(queue).base],
                      [partition, "limit", "" if max_running is None else max_running, n, window])

    def pause_partition(self, queue: str, partition: str, paused: bool = True) -> bool:
        """No job of the partition starts (or, paused=False: they may again); whether that changed it."""
        mode = "pause" if paused else "resume"
        return bool(self.conn.run("partition", [self.qk(queue).base], [partition, mode]))

    def back_off_partition(self, queue: str, partition: str, ms: int) -> None:
        """No job of the partition starts for `ms` (0: the backoff ends now)."""
        self.conn.run("partition", [self.qk(queue).base], [partition, "backoff", max(0, int(ms))])

    def partition_state(self, queue: str, partition: str) -> PartitionState:
        k = self.qk(queue)
        pk = k.partition(partition)
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            pipe.zscore(k.backlog, partition).scard(f"{pk}:leases")
            pipe.hmget(f"{pk}:conf", "max_running", "rate_n", "rate_window", "paused", "until", "alimit")
            waiting, running, conf = pipe.execute()
        until, alimit = conf[4], conf[5]
        rate_n, window = _int(conf[1]), _int(conf[2])
        return PartitionState(queue, partition, int(waiting or 0), int(running), text(conf[3]) == "1", _int(until),
                              _int(conf[0]), (rate_n, window) if rate_n and window else None,
                              None if alimit is None else float(text(alimit) or 0))

    def partition_names(self, queue: str, limit: int = 100) -> list[str]:
        """The partitions with jobs waiting in their lanes, the largest backlog first, then those
        paused or backing off (at most `limit` in all)."""
        k = self.qk(queue)
        with self.conn.errors():
            waiting = [text(p) or "" for p in self.conn.client.zrevrange(k.backlog, 0, limit - 1)]
            blocked = [text(p) or "" for p in self.conn.client.smembers(k.blocked)]
        seen = set(waiting)
        return (waiting + sorted(p for p in blocked if p not in seen))[:limit]

    def partition_limits(self, queue: str) -> PartitionLimits | None:
        """What set_partitioning() stored for the queue's partitions, or None."""
        with self.conn.errors():
            v = self.conn.client.hmget(self.qk(queue).partition_limits, "max_running", "rate_n", "rate_window",
                                       "astart", "amax")
        if not any(v):
            return None
        rate_n, window, start, most = _int(v[1]), _int(v[2]), _int(v[3]), _int(v[4])
        return PartitionLimits(_int(v[0]) or 0, (rate_n, window) if rate_n and window else None,
                               (start, most) if start and most else None)
