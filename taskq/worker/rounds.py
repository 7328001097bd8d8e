"""The records of the intake's rounds (worker/intake.py): the limits every fetch passes to Redis,
fixed at start (IntakeLimits), what one round plans and decides (Plan, Step), and the pace of
ends and fetches that sizes arming (Pace)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from taskq.broker.base import Delivery, TaskLimit
from taskq.limits import parse_rate

if TYPE_CHECKING:
    from taskq.app import TaskQ
    from taskq.task import TaskBase

#: weight of the newest measurement in the moving averages of end rate and fetch latency
SMOOTHING = 0.2

@dataclasses.dataclass(slots=True)
class Step:
    """What one round decided: jobs to run now, jobs to give back (unstarted), and whether the
    worker has nothing to do until Redis wakes it (`idle`, with the next due time if known)."""

    run: list[Delivery] = dataclasses.field(default_factory=list)
    give_back: list[Delivery] = dataclasses.field(default_factory=list)
    #: reserved jobs this worker lets go without a call: their lease may have lapsed (recovered by
    #: Redis, unblamed), or Redis refused to start them (cancelled, or leased to another worker)
    dropped: list[Delivery] = dataclasses.field(default_factory=list)
    idle: bool = False
    next_due: float | None = None
    #: nothing can happen until a running job ends: wait for a slot, not for Redis
    wait_slot: bool = False
    #: queue -> workflow steps with successors that this round's fetch ended (expired): the
    #: worker tells their successors at once (an outbox sweep would, later)
    ended: dict[str, list[str]] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IntakeLimits:
    """What bounds the leases a worker takes, fixed for its life (each is enforced in Redis too)."""

    #: bodies this worker may start in all (max_jobs: then it recycles), or None for no limit
    budget: int | None = None
    #: queue -> (n, window ms): its global rate limit (app.queue(rate_limit=))
    rates: Mapping[str, tuple[int, int]] = dataclasses.field(default_factory=dict)
    #: queue -> most of its jobs leased at once across every worker (app.queue(max_running=))
    caps: Mapping[str, int] = dataclasses.field(default_factory=dict)
    #: the limits of the tasks that have their own (@app.task(rate_limit=, max_running=))
    tasks: tuple[TaskLimit, ...] = ()

    @classmethod
    def of(cls, app: TaskQ, budget: int | None = None) -> IntakeLimits:
        """The limits the app declares, per queue and per task."""
        policies = app.queue_policies.items()
        return cls(budget, {q: rate for q, p in policies if (rate := p.rate) is not None},
                   {q: p.max_running for q, p in policies if p.max_running}, task_limits(app.tasks.values()))


def task_limits(tasks: Iterable[TaskBase[Any, Any]]) -> tuple[TaskLimit, ...]:
    """The limits of the tasks that declare their own (what fetch enforces, in whichever queue
    their jobs are: a job sent to another queue with options(queue=) counts there)."""
    out: list[TaskLimit] = []
    for t in tasks:
        o = t.opts
        if t.gate is not None:
            rate = None if o.rate_limit is None else parse_rate(o.rate_limit, t.name)
            out.append(TaskLimit(t.gate, rate, o.max_running or 0))
    return tuple(out)


@dataclasses.dataclass(slots=True)
class Plan:
    """A round decided under the lock, for the fetch made without it: the reserved jobs to start
    (`start`), how many to lease as running and as reserved, and the suspect to run alone."""

    out: Step
    start: list[Delivery]
    run: int
    reserve: int
    suspect: Delivery | None = None


@dataclasses.dataclass(slots=True)
class Pace:
    """Moving averages of bodies ended per second and seconds one fetch takes: how many jobs to
    keep armed (intake.py's docstring: arming)."""

    #: when the rate was last measured (monotonic seconds)
    measured: float
    rate: float = 0.0
    latency: float = 0.0
    #: bodies ended since `measured`
    ended: int = 0

    def measure(self, now: float) -> None:
        elapsed = now - self.measured
        if elapsed >= 0.005:  # sub-ms windows say little about a rate
            self.rate += SMOOTHING * (self.ended / elapsed - self.rate)
            self.ended, self.measured = 0, now

    def fetched(self, took: float) -> None:
        self.latency += SMOOTHING * (took - self.latency)

    def ahead(self, concurrency: int) -> int:
        """About the number of jobs expected to end during one fetch (none for slow jobs)."""
        expected = 2 * self.rate * self.latency  # twice: rate and latency both vary
        return 0 if expected < 0.5 else min(concurrency, math.ceil(expected))
