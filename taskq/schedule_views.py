"""The read model of schedules: `taskq.ScheduleInfo`, one schedule as the app, `taskq schedule`
and the dashboard show it, from a code schedule and its claim state or from a stored one."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Protocol

from taskq.broker.base import Broker, ScheduleState, StoredSchedule
from taskq.cron import CronSpec, EverySpec, Timing
from taskq.message import unpack_value


class _Named(Protocol):
    name: str


class ScheduleSource(Protocol):
    """What the read model shows of a schedule declared in code (taskq.Schedule is one)."""

    @property
    def name(self) -> str: ...
    @property
    def task(self) -> _Named: ...
    @property
    def queue(self) -> str: ...
    @property
    def timing(self) -> Timing: ...
    @property
    def args(self) -> tuple[Any, ...]: ...
    @property
    def kwargs(self) -> dict[str, Any]: ...
    @property
    def catchup(self) -> str: ...
    @property
    def overlap(self) -> str: ...


def _at(ms: int | None) -> dt.datetime | None:
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """One schedule: what it fires, when it fires next and fired last, how often it has.

    `source` is "code" (declared in the app: it can be paused, not removed) or "api" (stored by
    `app.schedules.upsert`). `next_at` is None while paused or once ended (end_at passed or
    limit runs fired). Times are aware UTC datetimes."""

    id: str
    task: str
    cron: str | None
    every: float | None
    tz: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    next_at: dt.datetime | None
    last_at: dt.datetime | None
    runs: int
    limit: int | None
    start_at: dt.datetime | None
    end_at: dt.datetime | None
    paused: bool
    source: str
    overlap: str = "queue"
    catchup: str = "latest"
    #: the newest tick skipped because its previous run had not ended (overlap="skip")
    skipped_at: dt.datetime | None = None

    def as_view(self) -> dict[str, Any]:
        """Plain values for JSON and the templates."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("next_at", "last_at", "start_at", "end_at", "skipped_at"):
            when = out[name]
            out[name] = None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")
        out["args"], out["kwargs"] = list(self.args), dict(self.kwargs)
        out["when"] = self.cron if self.cron is not None else f"every {self.every:g}s"
        return out


def _next(timing: Timing, state: ScheduleState | None, now: int, *, end_ms: int | None = None,
          limit: int | None = None) -> int | None:
    if state is not None and (state.paused or (limit is not None and state.runs >= limit)):
        return None
    tick = timing.next_after(max(now, state.last if state else now))
    return None if end_ms is not None and tick > end_ms else tick


def _split(timing: Timing) -> tuple[str | None, float | None]:
    return (timing.expr, None) if isinstance(timing, CronSpec) else (None, timing.seconds)


def of_code(s: ScheduleSource, state: ScheduleState | None, now: int) -> ScheduleInfo:
    cron, every = _split(s.timing)
    return ScheduleInfo(
        id=s.name, task=s.task.name, cron=cron, every=every, tz=s.timing.tz, args=tuple(s.args),
        kwargs=dict(s.kwargs), queue=s.queue, next_at=_at(_next(s.timing, state, now)),
        last_at=_at(state.fired_tick if state else None), runs=state.runs if state else 0, limit=None,
        start_at=None, end_at=None, paused=bool(state and state.paused), source="code", overlap=s.overlap,
        catchup=s.catchup, skipped_at=_at(state.skipped_tick if state else None))


def timing_of(s: StoredSchedule) -> Timing:
    """The timing a stored schedule fires on."""
    if s.cron:
        return CronSpec(s.cron, s.tz, name=s.id)
    return EverySpec(s.every_ms / 1000, start_ms=s.start_ms, name=s.id)


def stored_arguments(s: StoredSchedule) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args, kwargs = unpack_value(s.args)
    return tuple(args), dict(kwargs)


def of_stored(s: StoredSchedule, now: int) -> ScheduleInfo:
    timing = timing_of(s)
    cron, every = _split(timing)
    args, kwargs = stored_arguments(s)
    state = s.state
    return ScheduleInfo(
        id=s.id, task=s.task, cron=cron, every=every, tz=s.tz, args=args, kwargs=kwargs, queue=s.queue,
        next_at=_at(_next(timing, state, now, end_ms=s.end_ms, limit=s.limit)),
        last_at=_at(state.fired_tick if state else None), runs=state.runs if state else 0, limit=s.limit,
        start_at=_at(s.start_ms), end_at=_at(s.end_ms), paused=bool(state and state.paused), source="api",
        overlap=s.overlap, catchup=s.catchup, skipped_at=_at(state.skipped_tick if state else None))


def schedule_infos(broker: Broker, code: Mapping[str, ScheduleSource]) -> list[ScheduleInfo]:
    """Every schedule of the namespace this app can see: its code ones and every stored one, by id."""
    now = broker.time_ms()
    out = [of_code(s, broker.schedule_state(s.queue, name), now) for name, s in code.items()]
    out += [of_stored(s, now) for s in broker.stored_schedules(broker.stored_schedule_queues())]
    return sorted(out, key=lambda i: i.id)
