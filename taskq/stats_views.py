"""The history read model: `StatsPoint`s of queues and tasks over a window, for `app.stats()`,
`taskq stats` and the dashboard's charts (from the broker's per-minute and per-hour
`StatsMinute`s)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from taskq.broker.base import Broker, StatsMinute
from taskq.errors import ConfigError

#: how long history is kept by the hour (lua/lib/stats.lua's STATS_TTL): a window reaching
#: further has zeros there
KEPT_SECONDS = 8 * 86400
#: the longest window read by the minute: minute buckets are kept 25 hours (STATS_MINUTE_TTL),
#: so a day of steps is whole; a longer window is read by the hour (step_for())
MINUTES_SECONDS = 86400
HOUR = 3600


@dataclasses.dataclass(frozen=True, slots=True)
class StatsPoint:
    """One step of history (`step` seconds from `at`, an aware UTC datetime), over the queues asked.

    Counts: jobs enqueued, runs started, jobs succeeded, failed attempts (each run that raised,
    including the last one of a job that then went dead), retries scheduled, jobs dead. Runtimes
    are of the runs a worker reported (succeeded or failed), waits from a job's due time to its
    start; averages are 0.0 where no run ended or started.
    """

    at: dt.datetime
    enqueued: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    runtime_ms_avg: float = 0.0
    runtime_ms_max: int = 0
    wait_ms_avg: float = 0.0
    wait_ms_max: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain values (`at` as ISO 8601), for JSON."""
        d = dataclasses.asdict(self)
        d["at"] = self.at.isoformat()
        return d


def seconds_of(value: float | dt.timedelta) -> int:
    """A window or step given in seconds or as a timedelta, in whole seconds."""
    return int(value.total_seconds() if isinstance(value, dt.timedelta) else value)


def step_for(since: float | dt.timedelta, step: float | dt.timedelta) -> int:
    """The step history() reads a window in, seconds: `step`, except over a window longer than a
    day (MINUTES_SECONDS) a step that is not whole hours is rounded up to the next whole hour
    (only hour buckets reach back that far)."""
    since_s, step_s = seconds_of(since), seconds_of(step)
    if since_s > MINUTES_SECONDS and step_s % HOUR:
        return -(-step_s // HOUR) * HOUR
    return step_s


def history(broker: Broker, queues: Sequence[str], *, task: str | None = None,
            since: float | dt.timedelta = 3600, step: float | dt.timedelta = 60,
            now_ms: int | None = None) -> list[StatsPoint]:
    """The last `since` seconds of the queues' history (one task's, given `task`), summed over
    the queues, in points `step` seconds apart (60 or a multiple), oldest first, every step there
    (zero where nothing happened).

    A step of whole hours reads the hour buckets (kept 8 days; 168 reads for a week): the points
    start on the hour and the last one holds the current hour, so far. Any other step reads the
    minute buckets (kept 25 hours) and the last point holds the current minute, so far; over a
    window longer than a day such a step is rounded up to whole hours (step_for()), so every
    point returned is complete, never zero for want of minutes."""
    since_s, step_s = seconds_of(since), seconds_of(step)
    if step_s < 60 or step_s % 60:
        raise ConfigError(f"stats step={step_s}: give 60 seconds or a multiple of 60")
    if since_s < step_s:
        raise ConfigError(f"stats since={since_s}: give at least one step ({step_s} seconds)")
    step_s = step_for(since_s, step_s)
    n = -(-since_s // step_s)  # whole steps covering the window
    now = broker.time_ms() if now_ms is None else now_ms
    read: Callable[[str, int, int, str | None], list[StatsMinute]]
    if step_s % HOUR == 0:  # by the hour: bucket numbers are unix hours
        unit, per, last, read = HOUR // 60, step_s // HOUR, now // 3_600_000, broker.stats_hours
        kept = KEPT_SECONDS // HOUR
    else:  # by the minute
        unit, per, last, read = 1, step_s // 60, now // 60_000, broker.stats
        kept = MINUTES_SECONDS // 60 + 60
    first = last - n * per + 1
    sums = [dict.fromkeys(_COUNTERS, 0) for _ in range(n)]
    # history older than it is kept has expired: not read (zeros)
    oldest = max(first, last - kept)
    for queue in queues:
        for m in read(queue, oldest, last, task):
            _add(sums[(m.minute // unit - first) // per], m)
    return [_point((first + i * per) * unit, s) for i, s in enumerate(sums)]


_COUNTERS = tuple(f.name for f in dataclasses.fields(StatsMinute) if f.name != "minute")
_MAXIMA = ("runtime_ms_max", "wait_ms_max")


def _add(into: dict[str, int], m: StatsMinute) -> None:
    for name in _COUNTERS:
        v = getattr(m, name)
        into[name] = max(into[name], v) if name in _MAXIMA else into[name] + v


def _point(minute: int, s: dict[str, int]) -> StatsPoint:
    return StatsPoint(
        at=dt.datetime.fromtimestamp(minute * 60, dt.UTC), enqueued=s["enqueued"], started=s["started"],
        succeeded=s["succeeded"], failed=s["failed"], retried=s["retried"], dead=s["dead"],
        runtime_ms_avg=s["runtime_ms"] / s["runs"] if s["runs"] else 0.0, runtime_ms_max=s["runtime_ms_max"],
        wait_ms_avg=s["wait_ms"] / s["started"] if s["started"] else 0.0, wait_ms_max=s["wait_ms_max"],
    )
