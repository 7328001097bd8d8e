"""The enqueue scripts' KEYS and ARGV, built from NewJobs, and their replies read back: what the
sync broker (broker/redis.py) and the asyncio one (broker/aio.py) share. The argument lists are
docs/protocol.md §6 (foreign producers send the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.broker.client import text
from taskq.broker.keys import QueueKeys
from taskq.broker.placement import NewJob, Placement
from taskq.broker.records import JobState, Status
from taskq.errors import ConfigError, QueueFull

#: most jobs stored by one enqueue_many script call
ENQUEUE_BATCH = 1000

def enqueue_call(k: QueueKeys, job: NewJob, max_ready: int = 0) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of one enqueue.lua call."""
    p = job.place
    keys = [k.job(job.id), k.ready(job.priority), k.scheduled, k.notify, k.dedup(job.key or "")]
    args: list[Any] = [job.id, job.body, p.delay_ms, p.at_ms, "0" if job.key is None else "1", job.priority, max_ready,
            p.order or "", p.gate or "", p.task or ""]
    if p.expires_ms or p.expires_at_ms or p.partition:
        args += (p.expires_ms, p.expires_at_ms)
    if p.partition:
        args.append(p.partition)
    return keys, args


def enqueue_many_calls(k: QueueKeys, jobs: Sequence[NewJob], max_ready: int = 0) -> tuple[list[str], list[list[Any]]]:
    """The KEYS and the ARGV lists of the enqueue_many.lua calls that store `jobs` (of one queue, in
    order): one call per run of jobs sharing a placement, at most ENQUEUE_BATCH jobs each; with
    max_ready, one call per run (its limit is checked for the run as a whole). One pass, no copies:
    this is every job of a map()."""
    keys = [k.scheduled, k.notify, *(k.ready(p) for p in range(9, -1, -1))]
    batches: list[list[Any]] = []
    size = len(jobs) if max_ready else ENQUEUE_BATCH
    place: Placement | None = None
    header: list[Any] = []
    args: list[Any] = []
    tail: list[Any] = []
    count = 0
    for job in jobs:
        if job.place is not place and job.place != place:
            if place is not None:
                batches.append(args + tail)
            place = job.place
            if place.queue != k.queue:
                raise ConfigError(f"enqueue_many: a job of queue {place.queue!r} among jobs of {k.queue!r}")
            header, tail = [f"{k.base}:job:", place.delay_ms, place.at_ms], _many_tail(place, max_ready)
            args, count = header.copy(), 0
        elif count == size:
            batches.append(args + tail)
            args, count = header.copy(), 0
        args += (job.id, job.body, job.priority)
        count += 1
    if place is not None:
        batches.append(args + tail)
    return keys, batches


def _many_tail(place: Placement, max_ready: int) -> list[Any]:
    """What enqueue_many.lua reads after the jobs: nothing, max_ready, or max_ready and the
    placement's ordering key, gate, task, expiry joined by NUL bytes (docs/protocol.md §6)."""
    parts = [place.order or "", place.gate or "", place.task or ""]
    if place.expires_ms or place.expires_at_ms or place.partition:
        parts += (str(place.expires_ms), str(place.expires_at_ms))
    if place.partition:
        parts.append(place.partition)
    if any(parts):
        return [max_ready, "\0".join(parts)]
    return [max_ready] if max_ready else []


def enqueued(reply: Sequence[Any], job: NewJob, max_ready: int) -> str:
    """The id an enqueue.lua reply names (the live job holding the key, if any), or QueueFull."""
    found, created = reply
    if created == -1:
        raise QueueFull(f"queue {job.queue!r} is full: {max_ready} ready jobs (max_ready); nothing was enqueued")
    return text(found) or job.id


def stored(replies: Sequence[Any], queue: str, jobs: int, max_ready: int) -> int:
    """How many jobs the enqueue_many.lua replies stored, or QueueFull (nothing was)."""
    counts = [int(n) for n in replies]
    if -1 in counts:
        raise QueueFull(f"queue {queue!r} is full: {jobs} more would pass its {max_ready} ready jobs "
                        "(max_ready); nothing was enqueued")
    return sum(counts)


def status_of(value: Any) -> Status | None:
    try:
        return Status(text(value) or "")
    except ValueError:
        return None


def job_state(reply: Sequence[Any]) -> JobState:
    """A job's (status, result, error, reason) fields as a JobState."""
    status = status_of(reply[0])
    if status is None:  # a foreign writer's status: treat the job as not ended
        status = Status.QUEUED
    return JobState(status, reply[1], text(reply[2]), text(reply[3]))
