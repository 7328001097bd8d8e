"""Partitions: a queue's tenants or destinations, each with limits of its own (`taskq.Partition`,
from `app.partition(queue, name)`), and what Redis has of them (`taskq.PartitionInfo`).

A job takes a partition with `options(partition=...)`; `app.queue(..., partition_max_running=,
partition_rate_limit=, fair=)` declares what every partition of the queue may do. Everything here
holds for every worker at its next fetch (lua/lib/part.lua enforces it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from taskq.broker.base import Broker, PartitionLimits, PartitionState
from taskq.errors import ConfigError
from taskq.limits import parse_rate
from taskq.options import check_partition, named_options

__all__ = ["Partition", "PartitionInfo"]

_UNITS = {1000: "s", 60_000: "m", 3_600_000: "h"}


def rate_text(rate: tuple[int, int] | None) -> str | None:
    """(10, 1000) -> "10/s"."""
    if rate is None:
        return None
    n, window = rate
    unit = _UNITS.get(window)
    return f"{n}/{unit}" if unit else f"{n}/{window}ms"


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionInfo:
    """One reading of a partition (`Partition.info()`, `app.partitions()`)."""

    queue: str
    name: str
    #: its jobs waiting in its lanes: every ready job of it in a fair queue; in another queue, the
    #: ready jobs its limits (or a pause) hold back
    ready: int
    #: its jobs leased now (running, or reserved by a worker)
    running: int
    paused: bool
    #: when a backoff (RateLimited(partition=True), backoff()) ends, or None
    paused_until: dt.datetime | None
    #: most of its jobs running at once: its own limit, else the queue's (an adaptive one: where
    #: it stands now), or None: no cap
    max_running: int | None
    #: most starts per window ("10/s"): its own, else the queue's, or None
    rate_limit: str | None
    #: whether limit() gave it limits of its own
    own_limits: bool = False

    @classmethod
    def of(cls, state: PartitionState, queue_limits: PartitionLimits | None, now_ms: int) -> PartitionInfo:
        q = queue_limits or PartitionLimits()
        cap: int | None = state.own_max_running
        if cap is None:
            cap = q.max_running or None
            if q.adaptive is not None:
                start, most = q.adaptive
                cap = max(1, min(most, int(state.adaptive_limit if state.adaptive_limit is not None else start)))
        until = state.until_ms if state.until_ms is not None and state.until_ms > now_ms else None
        return cls(state.queue, state.name, state.waiting, state.running, state.paused,
                   None if until is None else dt.datetime.fromtimestamp(until / 1000, dt.UTC), cap,
                   rate_text(state.own_rate or q.rate),
                   state.own_max_running is not None or state.own_rate is not None)


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
