"""Schedule: a task fired by `taskq beat` on a cron expression or an interval, with fixed arguments.

Declared in code (`@app.task(cron=|every=)`, `app.schedule()`: source "code") or stored in Redis at
run time (`app.schedules.upsert()`: source "api", taskq/schedules.py); beat fires both alike."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from taskq.cron import Timing
from taskq.errors import ConfigError, TaskqError
from taskq.task import TaskBase

Catchup = Literal["latest", "all", "none"]
#: what beat does with ticks missed while no beat was leading
CATCHUP: tuple[Catchup, ...] = ("latest", "all", "none")
Overlap = Literal["queue", "skip"]
Source = Literal["code", "api"]
OVERLAP: tuple[Overlap, ...] = ("queue", "skip")
#: default bound on the missed ticks that catchup="all" fires
MAX_CATCHUP = 100


@dataclasses.dataclass(frozen=True, slots=True)
class Schedule:
    """One periodic call. Validated when created, so a bad one fails at import.

    catchup: after downtime, "latest" fires the most recent missed tick once, "all" fires
    the missed ticks (the most recent `max_catchup` of them), "none" fires none.
    """

    name: str
    task: TaskBase[Any, Any]
    #: when it fires: a CronSpec or an EverySpec
    timing: Timing
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    catchup: Catchup = "latest"
    max_catchup: int = MAX_CATCHUP
    max_message_bytes: int = 512 * 1024
    #: "queue": every tick enqueues a job; "skip": not while the previous one is queued or running
    overlap: Overlap = "queue"
    #: "code" (declared in the app) or "api" (stored in Redis by app.schedules.upsert)
    source: Source = "code"
    #: a stored schedule's revision: each upsert stores a new one (0 for code)
    rev: int = 0
    #: the queue its jobs go to, if not the task's
    queue_name: str | None = None
    #: a stored schedule's end (no tick after it, unix ms) and most runs (fire.lua enforces both;
    #: beat reads them only to stop trying)
    end_ms: int | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c.isspace() or c in "{}" for c in self.name):
            raise ConfigError(f"schedule name must be a non-empty string without spaces or braces, got {self.name!r}")
        if self.catchup not in CATCHUP:
            raise ConfigError(f"schedule {self.name!r}: catchup must be one of {', '.join(CATCHUP)}, "
                              f"got {self.catchup!r}")
        if self.overlap not in OVERLAP:
            raise ConfigError(f"schedule {self.name!r}: overlap must be one of {', '.join(OVERLAP)}, "
                              f"got {self.overlap!r}")
        if not isinstance(self.max_catchup, int) or isinstance(self.max_catchup, bool) or self.max_catchup < 1:
            raise ConfigError(f"schedule {self.name!r}: max_catchup must be an int >= 1, got {self.max_catchup!r}")
        try:  # the arguments must fit the task and travel as msgpack, now rather than at 3 a.m.
            self.task.check_args(self.args, self.kwargs)
            self.body(0, 0)
        except TaskqError as exc:
            raise ConfigError(f"schedule {self.name!r}: {exc}") from None

    @property
    def queue(self) -> str:
        return self.queue_name or self.task.opts.queue

    @property
    def cron(self) -> Timing:
        """The timing (kept under its first name: schedules were cron only)."""
        return self.timing

    @property
    def spec(self) -> str:
        """What fire.lua compares with the stored schedule: a stored one's revision too, so
        a beat that built a tick from an older definition re-reads instead of firing it."""
        return self.timing.fingerprint if self.source == "code" else f"{self.timing.fingerprint}#{self.rev}"

    def job_id(self, tick_ms: int) -> str:
        """Deterministic per tick, so a tick's job is recognisable (and never made twice)."""
        return f"cron:{self.name}:{tick_ms}"

    def body(self, tick_ms: int, now_ms: int) -> bytes:
        """The packed message of the job fired for `tick_ms`."""
        return self.task.message(self.job_id(tick_ms), self.args, self.kwargs, queue=self.queue,
                                 priority=self.task.opts.priority, enqueued_at=now_ms / 1000,
                                 limit=self.max_message_bytes)
