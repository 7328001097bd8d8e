"""The enqueue scripts' KEYS and ARGV, built from NewJobs, and their replies read back: what the
sync broker (broker/redis.py) and the asyncio one (broker/aio.py) share. The argument lists are
docs/protocol.md §6 (foreign producers send the same)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.broker.client import text
from taskq.broker.keys import QueueKeys
from taskq.broker.placement import Move, NewJob, Placement
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
    more = bool((job.key is not None and (p.key_ttl_ms or p.debounce_ms)) or p.at_most_once)
    if p.expires_ms or p.expires_at_ms or p.partition or more:
        args += (p.expires_ms, p.expires_at_ms)
    if p.partition or more:
        args.append(p.partition or "")
    if more:
        args += (p.key_ttl_ms, p.debounce_ms, p.debounce_max_ms, "a" if p.at_most_once else "")
    return keys, args


def enqueue_many_calls(k: QueueKeys, jobs: Sequence[NewJob], max_ready: int = 0) -> tuple[list[str], list[list[Any]]]:
    """The KEYS and the ARGV lists of the enqueue_many.lua calls that store `jobs` (of one queue, in
    order): one call per run of jobs whose placements differ at most in their partition, at most
    ENQUEUE_BATCH jobs each; with max_ready, one call per run (its limit is checked for the run as
    a whole). One pass, no copies: this is every job of a map()."""
    keys = [k.scheduled, k.notify, *(k.ready(p) for p in range(9, -1, -1))]
    batches: list[list[Any]] = []
    size = len(jobs) if max_ready else ENQUEUE_BATCH
    place: Placement | None = None
    shared: tuple[Any, ...] | None = None
    args: list[Any] = []
    parts: list[str | None] = []
    count = 0
    for job in jobs:
        if job.place is not place:
            new = _shared(job.place)
            if new != shared:
                if place is not None:
                    batches.append(args + _many_tail(place, max_ready, parts))
                if job.place.queue != k.queue:
                    raise ConfigError(f"enqueue_many: a job of queue {job.place.queue!r} among jobs of {k.queue!r}")
                shared, args, parts, count = new, [f"{k.base}:job:", job.place.delay_ms, job.place.at_ms], [], 0
            place = job.place
        if count == size:
            batches.append(args + _many_tail(place, max_ready, parts))
            args, parts, count = [f"{k.base}:job:", place.delay_ms, place.at_ms], [], 0
        args += (job.id, job.body, job.priority)
        parts.append(place.partition)
        count += 1
    if place is not None:
        batches.append(args + _many_tail(place, max_ready, parts))
    return keys, batches


def _shared(place: Placement) -> tuple[Any, ...]:
    """What jobs of one enqueue_many call share: their placement but the partition."""
    return (place.queue, place.delay_ms, place.at_ms, place.order, place.gate, place.task, place.expires_ms,
            place.expires_at_ms, place.at_most_once)


def _many_tail(place: Placement, max_ready: int, partitions: Sequence[str | None]) -> list[Any]:
    """What enqueue_many.lua reads after the jobs: nothing, max_ready, or max_ready and the
    placement's ordering key, gate, task, expiry and partition (each job's own when they differ)
    and flags joined by NUL bytes (docs/protocol.md §6): flags go after every job's partition."""
    parts = [place.order or "", place.gate or "", place.task or ""]
    one = partitions[0] if partitions and all(p == partitions[0] for p in partitions) else None
    mixed = one is None and any(partitions)
    flags = place.at_most_once
    if place.expires_ms or place.expires_at_ms or one or mixed or flags:
        parts += (str(place.expires_ms), str(place.expires_at_ms))
    if flags:
        parts += (one or "", *("" if one else p or "" for p in partitions), "a")
    elif one:
        parts.append(one)
    elif mixed:
        parts += ("", *(p or "" for p in partitions))
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


def move_call(k: QueueKeys, job_id: str, move: Move) -> tuple[list[str], list[Any]]:
    """The KEYS and ARGV of one move.lua call (job.reschedule, job.set_priority)."""
    return [k.base], [job_id, move.what, move.value]


def moved(reply: Sequence[Any]) -> tuple[Status | None, bool]:
    """A move.lua reply: the status the job had (None: no such job), whether it changed."""
    return (status_of(reply[0]) if text(reply[0]) else None), int(reply[1]) == 1


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
