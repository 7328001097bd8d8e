"""Partitions: a queue's tenants or destinations, each with limits of its own (`taskq.Partition`,
from `app.partition(queue, name)`), and what Redis has of them (`taskq.PartitionInfo`, defined with
the read model in partition_views.py).

A job takes a partition with `options(partition=...)`; `app.queue(..., partition_max_running=,
partition_rate_limit=, fair=)` declares what every partition of the queue may do. Everything here
holds for every worker at its next fetch (lua/lib/part.lua enforces it).
"""

from __future__ import annotations

import datetime as dt

from taskq.broker.base import Broker
from taskq.errors import ConfigError
from taskq.limits import parse_rate
from taskq.options import check_partition, named_options
from taskq.partition_views import PartitionInfo

__all__ = ["Partition", "PartitionInfo"]

class Partition:
    """One partition of a queue, for every worker: `limit()` gives it limits of its own (no
    argument: the queue's again), `pause()` and `resume()` stop and restart its jobs, `backoff(s)`
    holds them for s seconds (as RateLimited(partition=True) does), `info()` reads it."""

    def __init__(self, broker: Broker, queue: str, name: str) -> None:
        check_partition(name)
        self._broker = broker
        self.queue = queue
        self.name = name

    def __repr__(self) -> str:
        return f"<Partition {self.name!r} of queue {self.queue!r}>"

    @named_options("Partition.limit")
    def limit(self, *, max_running: int | None = None, rate_limit: str | None = None) -> None:
        """This partition's own limits (each None: the queue's)."""
        if max_running is not None and (not isinstance(max_running, int) or isinstance(max_running, bool)
                                        or max_running < 1):
            raise ConfigError(f"partition {self.name!r}: max_running must be an int >= 1 or None, got {max_running!r}")
        rate = None if rate_limit is None else parse_rate(rate_limit, f"partition {self.name!r}")
        self._broker.limit_partition(self.queue, self.name, max_running, rate)

    def pause(self) -> bool:
        """No job of this partition starts until resume() (running ones finish); whether it changed."""
        return self._broker.pause_partition(self.queue, self.name, True)

    def resume(self) -> bool:
        """Its jobs may start again; whether it was paused."""
        return self._broker.pause_partition(self.queue, self.name, False)

    def backoff(self, seconds: float | dt.timedelta) -> None:
        """No job of this partition starts for `seconds` (0: the backoff ends now)."""
        s = seconds.total_seconds() if isinstance(seconds, dt.timedelta) else seconds
        if not isinstance(s, (int, float)) or isinstance(s, bool) or s < 0:
            raise ConfigError(f"partition {self.name!r}: backoff must be >= 0 seconds, got {seconds!r}")
        self._broker.back_off_partition(self.queue, self.name, int(s * 1000))

    def info(self) -> PartitionInfo:
        broker = self._broker
        return PartitionInfo.of(broker.partition_state(self.queue, self.name), broker.partition_limits(self.queue),
                                broker.time_ms())


def partitions(broker: Broker, queue: str, limit: int = 100) -> list[PartitionInfo]:
    """The queue's partitions with jobs waiting, the largest backlog first, then paused or
    backing-off ones (at most `limit`)."""
    limits, now = broker.partition_limits(queue), broker.time_ms()
    return [PartitionInfo.of(broker.partition_state(queue, p), limits, now)
            for p in broker.partition_names(queue, limit)]
