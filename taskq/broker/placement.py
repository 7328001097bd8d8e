"""What a producer hands the broker to store a job: `NewJob`, its message and `Placement`.

A call's placement (queue, due time, ordering key, task gate, deadline, dedup window,
debounce, at most once) is shared by every job
of that call, so it is one object: bulk enqueues group their jobs by it, and a new per-call
option is one field here, one in `TaskCall` (taskq/task.py) and one argument of the enqueue
scripts (broker/calls.py).
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True, slots=True)
class Placement:
    """Where and when the jobs of one call wait, and under which keys of the queue."""

    queue: str
    #: due this many ms after the broker stores the job (0: now), unless at_ms is given
    delay_ms: int = 0
    #: due at this unix ms (0: use delay_ms)
    at_ms: int = 0
    #: ordering key: jobs of the queue with the same one run one at a time, in the order they entered
    order: str | None = None
    #: the task's name when the task has its own limits (lib/gate.lua), else None
    gate: str | None = None
    #: the task's name, for the job's record and its events
    task: str | None = None
    #: a job not started this many ms after its due time never starts (0: no deadline)
    expires_ms: int = 0
    #: or a job not started by this unix ms never starts (0: none); wins over expires_ms
    expires_at_ms: int = 0
    #: the partition (tenant, destination) whose limits and turns apply (lib/part.lua), or None
    partition: str | None = None
    #: a job's dedup key stays held this many ms after the job ended (0: released as it ends)
    key_ttl_ms: int = 0
    #: debounce: a job with a key is due this many ms after the newest call with that key, which
    #: moves the key's job while it has not started (0: no debounce)
    debounce_ms: int = 0
    #: and never more than this many ms after the key's job was created (0: no cap)
    debounce_max_ms: int = 0
    #: a job whose worker died while running it is dead-lettered ("lost: at_most_once"), not run again
    at_most_once: bool = False


@dataclasses.dataclass(slots=True)  # not frozen: a frozen __init__ costs per job enqueued
class NewJob:
    """One job to store: its id and packed message, where it goes, its priority and dedup key."""

    place: Placement
    id: str
    body: bytes
    priority: int = 0
    #: deduplication key: while a live job holds it, storing another with it returns that job's id
    key: str | None = None

    @property
    def queue(self) -> str:
        return self.place.queue


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """A change to a job that has not started (job.reschedule, job.set_priority): a new due time,
    `what` "in" (value: ms from the broker's now) or "at" (value: unix ms), or a new priority,
    `what` "priority" (value: 0..9), or "now" (job.run_now(): only a job waiting for a time,
    scheduled or a retry waiting, moves; value 0)."""

    what: Literal["in", "at", "priority", "now"]
    value: int
