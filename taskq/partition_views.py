"""The read model of partitions: `taskq.PartitionInfo` (one partition as Redis has it, with the
limits that apply to it) and the views of a queue's partitions that `taskq partition` and the
dashboard show. Built from the broker's records (PartitionState, PartitionLimits) only."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from taskq.broker.base import PartitionLimits, PartitionState
from taskq.views import Source, check_queue, stamp

__all__ = ["PartitionInfo"]

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


def limits_text(limits: PartitionLimits | None) -> str:
    """What every partition of a queue may do, as `taskq partition show` says it."""
    if limits is None:
        return "none"
    said = []
    if limits.adaptive is not None:
        said.append(f"max_running adaptive {limits.adaptive[0]}..{limits.adaptive[1]}")
    elif limits.max_running:
        said.append(f"max_running {limits.max_running}")
    if limits.rate is not None:
        said.append(f"rate_limit {rate_text(limits.rate)}")
    return ", ".join(said) or "none"


def as_view(info: PartitionInfo) -> dict[str, Any]:
    """A PartitionInfo as JSON-ready fields (the instant as ISO 8601 text); `blocked` says why
    none of its jobs may start now, if it can tell: paused, backing off, or at its cap."""
    view = dataclasses.asdict(info)
    until = info.paused_until
    view["paused_until"] = None if until is None else stamp(int(until.timestamp() * 1000))
    view["blocked"] = ("paused" if info.paused else "backing off" if until is not None
                       else "at its cap" if info.max_running is not None and info.running >= info.max_running
                       else None)
    return view


def partition_list(app: Source, queue: str, limit: int = 100) -> list[dict[str, Any]]:
    """A known queue's partitions with jobs waiting, the largest backlog first, then those paused
    or backing off (at most `limit`), as as_view() gives them."""
    check_queue(app, queue)
    broker = app.broker
    limits, now = broker.partition_limits(queue), broker.time_ms()
    return [as_view(PartitionInfo.of(broker.partition_state(queue, p), limits, now))
            for p in broker.partition_names(queue, limit)]


def partition_show(app: Source, queue: str, name: str) -> dict[str, Any]:
    """One partition of a known queue (whether it has jobs or not), with the queue's limits for
    every partition beside its own."""
    check_queue(app, queue)
    broker = app.broker
    limits = broker.partition_limits(queue)
    view = as_view(PartitionInfo.of(broker.partition_state(queue, name), limits, broker.time_ms()))
    return {**view, "queue_limits": limits_text(limits)}
