"""`app.schedules`: every schedule of the app, the ones declared in code (`@app.task(cron=|every=)`,
`app.schedule()`) and the ones stored in Redis at run time (`upsert`), which any beat of the
namespace fires with the same exactly-once tick claim (lua/ops/fire.lua; changes: ops/schedule.lua).

A change takes effect at the next tick at least 1 s away, whichever beat leads: beats watch a
counter every change moves, and a tick built from an older revision is refused by Redis.
"""

from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from taskq.broker.base import Broker, StoredSchedule
from taskq.cron import CronSpec, EverySpec, Timing
from taskq.errors import ConfigError, TaskqError
from taskq.message import pack_value
from taskq.options import check_queue, named_options
from taskq.schedule import CATCHUP, MAX_CATCHUP, Catchup, Overlap, Schedule
from taskq.schedule_views import ScheduleInfo, of_code, of_stored, schedule_infos, stored_arguments, timing_of
from taskq.task import TaskBase

if TYPE_CHECKING:
    from taskq.job import Job

__all__ = ["ScheduleInfo", "Schedules"]


class _App(Protocol):
    max_message_bytes: int

    @property
    def broker(self) -> Broker: ...
    @property
    def tasks(self) -> Mapping[str, TaskBase[Any, Any]]: ...


def _ms(when: dt.datetime | None, what: str) -> int | None:
    if when is None:
        return None
    if not isinstance(when, dt.datetime) or when.tzinfo is None:
        raise ConfigError(f"{what} must be a timezone-aware datetime, got {when!r}")
    return round(when.timestamp() * 1000)


class Schedules:
    """The app's schedules. Indexing, `in`, `len()` and iteration see the ones declared in code
    (by name); `get`, `list` and the changes see every schedule of the namespace."""

    def __init__(self, app: _App) -> None:
        self._app = app
        #: the schedules declared in code, by name (what a beat of this app fires besides the stored)
        self.code: dict[str, Schedule] = {}

    def __getitem__(self, name: str) -> Schedule:
        return self.code[name]

    def __contains__(self, name: object) -> bool:
        return name in self.code

    def __iter__(self) -> Iterator[str]:
        return iter(self.code)

    def __len__(self) -> int:
        return len(self.code)

    def __repr__(self) -> str:
        return f"<Schedules code={sorted(self.code)}>"

    def declare(self, entry: Schedule) -> None:
        """Add a schedule declared in code (app.schedule does, after its checks)."""
        self.code[entry.name] = entry

    # -- stored at run time -------------------------------------------------

    @named_options("app.schedules.upsert")
    def upsert(
        self, id: str, task: TaskBase[Any, Any] | str, *, cron: str | None = None,
        every: float | dt.timedelta | None = None, tz: str = "UTC", args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None, queue: str | None = None, start_at: dt.datetime | None = None,
        end_at: dt.datetime | None = None, limit: int | None = None, overlap: Overlap = "queue",
        catchup: Catchup = "latest",
    ) -> ScheduleInfo:
        """Store (or replace) a schedule in Redis; every beat fires it from the next tick at least
        1 s away. `cron=` (in `tz`) or `every=` (seconds or timedelta, ticks on multiples of it
        from the epoch, or from start_at), not both; start_at delays the first tick, end_at
        stops them, limit caps the runs. Raises ConfigError (or SerializationError for arguments
        msgpack cannot send) before anything is stored."""
        start_ms, end_ms = _ms(start_at, "start_at"), _ms(end_at, "end_at")
        entry = self._entry(id, task, cron=cron, every=every, tz=tz, args=tuple(args), kwargs=dict(kwargs or {}),
                            queue=queue, start_ms=start_ms, overlap=overlap, catchup=catchup)
        if end_ms is not None and start_ms is not None and end_ms <= start_ms:
            raise ConfigError(f"schedule {id!r}: end_at must be after start_at")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ConfigError(f"schedule {id!r}: limit must be an int >= 1, got {limit!r}")
        timing, types = entry.timing, entry.task.types
        plain = (entry.args, entry.kwargs) if types is None else types.dump_call(  # models as plain maps
            entry.task.name, entry.args, entry.kwargs)
        stored = StoredSchedule(
            id=id, queue=entry.queue, task=entry.task.name, cron=timing.expr if isinstance(timing, CronSpec) else "",
            tz=timing.tz, every_ms=timing.every_ms if isinstance(timing, EverySpec) else 0,
            args=pack_value([list(plain[0]), plain[1]]), start_ms=start_ms, end_ms=end_ms, limit=limit,
            overlap=overlap, catchup=catchup)
        if self._app.broker.put_schedule(stored, timing.fingerprint) is None:
            raise ConfigError(f"schedule {id!r} is declared in code (by another app): change it there")
        info = self.get(id)
        assert info is not None
        return info

    def _entry(self, id: str, task: TaskBase[Any, Any] | str, *, cron: str | None,
               every: float | dt.timedelta | None, tz: str, args: tuple[Any, ...], kwargs: dict[str, Any],
               queue: str | None, start_ms: int | None, overlap: Overlap, catchup: Catchup) -> Schedule:
        """The schedule as beat would fire it: every check of upsert() but the store's."""
        if isinstance(id, str) and id in self.code:
            raise ConfigError(f"schedule {id!r} is declared in code: change it there")
        name = task if isinstance(task, str) else getattr(task, "name", None)
        found = self._app.tasks.get(name) if isinstance(name, str) else None
        if found is None or (not isinstance(task, str) and found is not task):
            raise ConfigError(f"schedule {id!r}: {task!r} is not a task of this app")
        if (cron is None) == (every is None):
            raise ConfigError(f"schedule {id!r}: give cron= or every=, not {'both' if cron else 'neither'}")
        if queue is not None:
            check_queue(queue)
        if catchup not in CATCHUP:
            raise ConfigError(f"schedule {id!r}: catchup must be one of {', '.join(CATCHUP)}, got {catchup!r}")
        if every is not None and tz != "UTC":
            raise ConfigError(f"schedule {id!r}: tz= is for cron=; every= counts seconds")
        timing: Timing = CronSpec(cron, tz, name=id) if cron is not None else EverySpec(
            every if every is not None else 0, start_ms=start_ms, name=id)
        return Schedule(id, found, timing, args, kwargs, catchup, MAX_CATCHUP, self._app.max_message_bytes,
                        overlap, source="api", queue_name=queue)

    def build(self, stored: StoredSchedule) -> Schedule | None:
        """A stored schedule as beat fires it, or None if this app has no task of that name."""
        task = self._app.tasks.get(stored.task)
        if task is None:
            return None
        args, kwargs = stored_arguments(stored)
        try:
            return Schedule(stored.id, task, timing_of(stored), args, kwargs, stored.catchup,  # type: ignore[arg-type]
                            MAX_CATCHUP, self._app.max_message_bytes, stored.overlap,  # type: ignore[arg-type]
                            source="api", rev=stored.rev, queue_name=stored.queue, end_ms=stored.end_ms,
                            limit=stored.limit)
        except TaskqError:  # stored by another version of the task (other arguments): not firable here
            return None

    def get(self, id: str) -> ScheduleInfo | None:
        """The schedule of that id (declared in code or stored), or None: its own reads only."""
        broker = self._app.broker
        if id in self.code:
            entry = self.code[id]
            return of_code(entry, broker.schedule_state(entry.queue, id), broker.time_ms())
        queue = broker.stored_schedule_queues().get(id)
        found = broker.stored_schedules({id: queue}) if queue else []
        return of_stored(found[0], broker.time_ms()) if found else None

    def list(self) -> builtins.list[ScheduleInfo]:
        """Every schedule: this app's declared in code, and every stored one of the namespace, by id."""
        return schedule_infos(self._app.broker, self.code)

    def _queue_of(self, id: str) -> str | None:
        if id in self.code:
            return self.code[id].queue
        return self._app.broker.stored_schedule_queues().get(id)

    def pause(self, id: str) -> bool:
        """No tick fires until resume() (paused ticks are never caught up). False if no such schedule."""
        queue = self._queue_of(id)
        return queue is not None and self._app.broker.pause_schedule(queue, id, True, create=id in self.code)

    def resume(self, id: str) -> bool:
        """Fire again, from the first tick at least 1 s away. False if no such schedule."""
        queue = self._queue_of(id)
        return queue is not None and self._app.broker.pause_schedule(queue, id, False)

    def remove(self, id: str) -> bool:
        """Remove a stored schedule (no tick fires after this returns); False if there is none.
        A schedule declared in code is removed from the code (ConfigError here)."""
        if id in self.code:
            raise ConfigError(f"schedule {id!r} is declared in code: remove it there (or pause it)")
        return self._app.broker.drop_schedule(id)

    def trigger(self, id: str) -> Job[Any]:
        """Run the schedule's call once now, outside its ticks (not counted in its runs)."""
        if id in self.code:
            s = self.code[id]
            return s.task.options(queue=s.queue).delay(*s.args, **s.kwargs)
        queue = self._queue_of(id)
        [stored] = self._app.broker.stored_schedules({id: queue}) if queue else [None]
        entry = self.build(stored) if stored else None
        if entry is None:
            raise ConfigError(f"no schedule {id!r}" if stored is None
                              else f"schedule {id!r}: task {stored.task!r} is not a task of this app")
        return entry.task.options(queue=entry.queue).delay(*entry.args, **entry.kwargs)
