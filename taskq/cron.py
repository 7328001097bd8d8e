"""Cron ticks as instants: a cron expression, a time zone, and the DST rule that joins them.

A tick is a matching local wall-clock time, turned into an instant (unix ms) by one rule:

- a wall time that exists once is that instant;
- a wall time that occurs twice (autumn, clocks go back) fires at its first occurrence only;
- a wall time that does not exist (spring, clocks go forward) fires at the end of the gap,
  the first instant after the clocks jumped; several such times fire there once.

So a 02:30 job in Europe/Berlin fires once on both DST days (03:00 CEST in spring, 02:30
CEST in autumn) and every other day at 02:30. Each tick's identity is its instant, so ticks
that land on the same instant are one tick. In UTC (the default) nothing of this arises.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator

from croniter import CroniterError, croniter

from taskq.errors import ConfigError

UTC = dt.UTC
#: most wall-clock matches looked at for one answer (a per-second cron across a DST hour is 3600)
MAX_STEPS = 20_000


class CronSpec:
    """A validated cron expression (5 fields, or 6 with seconds last, as croniter reads it)
    in an IANA time zone. All times in and out are unix milliseconds."""

    def __init__(self, expr: str, tz: str = "UTC", *, name: str = "?") -> None:
        if not isinstance(expr, str) or not croniter.is_valid(expr):
            raise ConfigError(f"schedule {name!r}: invalid cron expression {expr!r}")
        if len(expr.split()) not in (5, 6):
            raise ConfigError(f"schedule {name!r}: cron expression {expr!r} needs 5 fields (6 with seconds)")
        try:
            self.zone = zoneinfo.ZoneInfo(tz) if tz != "UTC" else None
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigError(f"schedule {name!r}: unknown time zone {tz!r}") from None
        self.expr = expr
        self.tz = tz
        try:  # an expression like "0 0 30 2 *" parses but never fires
            croniter(expr, dt.datetime(2000, 1, 1)).get_next(dt.datetime)
        except CroniterError:
            raise ConfigError(f"schedule {name!r}: cron expression {expr!r} never fires") from None

    def __repr__(self) -> str:
        return f"CronSpec({self.expr!r}, {self.tz!r})"

    @property
    def fingerprint(self) -> str:
        """What identifies the schedule's timing: a change resets its fired-tick record."""
        return f"{self.expr}|{self.tz}"

    # -- the DST rule -----------------------------------------------------

    def wall(self, ms: int) -> dt.datetime:
        """The naive local wall-clock time at an instant."""
        return dt.datetime.fromtimestamp(ms / 1000, self.zone or UTC).replace(tzinfo=None)

    def instant(self, wall: dt.datetime) -> int:
        """The instant (unix ms) a matching wall time fires at, by the rule above."""
        if self.zone is None:
            return _ms(wall.replace(tzinfo=UTC))
        first = wall.replace(tzinfo=self.zone, fold=0)  # fold=0: the first of two occurrences
        ms = _ms(first)
        if self.wall(ms) == wall:
            return ms
        # no such wall time: the clocks jumped over it; find the instant they jumped
        lo = _ms(wall.replace(tzinfo=self.zone, fold=1)) // 1000  # before the jump
        hi = ms // 1000  # after it
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self.wall(mid * 1000) >= wall:
                hi = mid
            else:
                lo = mid
        return hi * 1000

    def _ceiling(self, ms: int) -> dt.datetime:
        """A wall time such that every wall time up to it fires at or before `ms`, and every
        later one after `ms` (wall times fire in order, so one exists)."""
        wall = self.wall(ms)
        if self.zone is None:
            return wall
        local = dt.datetime.fromtimestamp(ms / 1000, self.zone)
        if not local.fold:
            return wall
        # `ms` is in the repeated hour: wall times up to the end of it fired in its first pass
        step = wall.replace(second=0, microsecond=0)
        while self.instant(step) <= ms:
            step += dt.timedelta(minutes=1)
        return step - dt.timedelta(seconds=1)

    # -- ticks ------------------------------------------------------------

    def _forward(self, after_ms: int) -> Iterator[int]:
        it = croniter(self.expr, self._ceiling(after_ms))
        last = after_ms
        for _ in range(MAX_STEPS):
            ms = self.instant(it.get_next(dt.datetime))
            if ms > last:
                last = ms
                yield ms

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after `after_ms`."""
        for ms in self._forward(after_ms):
            return ms
        raise ConfigError(f"cron {self.expr!r} in {self.tz}: no tick found after {after_ms}")

    def recent(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """Up to `limit` most recent ticks in (after_ms, until_ms], oldest first."""
        if limit <= 0 or until_ms <= after_ms:
            return []
        it = croniter(self.expr, self._ceiling(until_ms) + dt.timedelta(seconds=1))
        out: list[int] = []
        for _ in range(MAX_STEPS):
            ms = self.instant(it.get_prev(dt.datetime))
            if ms <= after_ms:
                break
            if ms <= until_ms and (not out or ms < out[-1]):
                out.append(ms)
                if len(out) >= limit:
                    break
        out.reverse()
        return out


def _ms(aware: dt.datetime) -> int:
    return round(aware.timestamp() * 1000)


class EverySpec:
    """A fixed interval: ticks at `offset + k * every` (unix ms), so every beat computes the
    same ones. Without a start they line up with the epoch (every=60: on the minute)."""

    def __init__(self, every: float | dt.timedelta, *, start_ms: int | None = None, name: str = "?") -> None:
        seconds = every.total_seconds() if isinstance(every, dt.timedelta) else every
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 1:
            raise ConfigError(f"schedule {name!r}: every must be seconds >= 1 (or a timedelta), got {every!r}")
        self.every_ms = round(seconds * 1000)
        self.offset_ms = (start_ms or 0) % self.every_ms
        self.tz = "UTC"

    def __repr__(self) -> str:
        return f"EverySpec({self.every_ms / 1000:g})"

    @property
    def seconds(self) -> float:
        return self.every_ms / 1000

    @property
    def expr(self) -> str:
        return f"every {self.every_ms / 1000:g}s"

    @property
    def fingerprint(self) -> str:
        return f"every:{self.every_ms}+{self.offset_ms}"

    def next_after(self, after_ms: int) -> int:
        """The first tick strictly after `after_ms`."""
        return after_ms + self.every_ms - (after_ms - self.offset_ms) % self.every_ms

    def recent(self, after_ms: int, until_ms: int, limit: int) -> list[int]:
        """Up to `limit` most recent ticks in (after_ms, until_ms], oldest first."""
        if limit <= 0 or until_ms <= after_ms:
            return []
        newest = until_ms - (until_ms - self.offset_ms) % self.every_ms
        oldest = max(self.next_after(after_ms), newest - (limit - 1) * self.every_ms)
        return list(range(oldest, newest + 1, self.every_ms))


#: when a schedule fires: a cron expression in a zone, or a fixed interval
Timing = CronSpec | EverySpec
