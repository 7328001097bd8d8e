"""The broker contract's records and enums: what the Protocols of broker/base.py take and return.

Times are unix milliseconds of the broker's own clock; "token" is a lease token
(`<worker id>:<delivery number>`) that fences every move of a leased job.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Sequence

#: the namespace when neither TaskQ(namespace=) nor $TASKQ_NAMESPACE gives one
DEFAULT_NAMESPACE = "taskq"
#: namespaces become the first part of every key: plain words only (no braces, colons, spaces)
NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class Status(enum.StrEnum):
    """Where a job is in its life. `failed` means an attempt failed and its retry waits."""

    QUEUED = "queued"
    SCHEDULED = "scheduled"
    #: leased to a worker ahead of a free slot (prefetched); its body has not started
    RESERVED = "reserved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"
    #: a workflow step whose parents have not all succeeded yet (in no list; taskq/workflow.py)
    WAITING = "waiting"


#: statuses a job never leaves by itself
TERMINAL = frozenset({Status.SUCCEEDED, Status.DEAD, Status.CANCELLED})
#: statuses in which cancel() stops a job before it ever starts
CANCELLABLE = frozenset({Status.QUEUED, Status.SCHEDULED, Status.FAILED, Status.RESERVED, Status.WAITING})


class Settled(enum.IntEnum):
    """What recording one outcome did."""

    LOST = 0  #: the lease token was no longer current: nothing written
    DONE = 1
    CANCELLED = 2  #: a retry of a job cancelled while it ran: it ended cancelled instead


class LeadResult(enum.IntEnum):
    """What one attempt to take or keep the beat leader lease did."""

    HELD_BY_OTHER = 0
    RENEWED = 1
    TAKEN = 2  #: a new term


class ClaimMode(enum.StrEnum):
    """What a cron claim does with a tick (see fire.lua)."""

    FIRE = "fire"  #: enqueue the tick's job
    SKIP = "skip"  #: mark the tick claimed without a job (catch-up "none")
    RESET = "reset"  #: start a new or changed schedule afresh


class ClaimResult(enum.IntEnum):
    STORED_ELSEWHERE = -2  #: reset refused: a schedule stored at run time has this name
    SPEC_DIFFERS = -1  #: the stored schedule has another expression; re-read it
    ALREADY_CLAIMED = 0
    CLAIMED = 1
    SKIPPED_OVERLAP = 2  #: overlap="skip": the previous run had not ended, no job for this tick
    PAUSED = 3  #: the schedule is paused: no job, the tick stays unclaimed
    ENDED = 4  #: past its end_at, or its limit of runs reached: no job


@dataclasses.dataclass(slots=True)  # not frozen: a frozen __init__ costs per job fetched
class Delivery:
    """One leased job as fetched: raw message bytes plus the lease token that owns it."""

    queue: str
    id: str
    body: bytes
    token: str
    deliveries: int
    #: times this job's worker died (or hung) while running it
    lost: int = 0
    #: leased as running (its body starts now); False: reserved, started by a later fetch
    running: bool = True
    #: monotonic time by which the lease lapses unless renewed (set by the worker)
    deadline: float = 0.0

    @property
    def key(self) -> tuple[str, str, str]:
        """Unique to this delivery: queue, job id and lease token (a token is unique per job only)."""
        return (self.queue, self.id, self.token)


@dataclasses.dataclass(slots=True)
class Fetched:
    """One fetch: the reserved jobs it started (True) or refused (False), the new leases, and
    seconds until the next scheduled job is due (None if none is)."""

    started: list[bool]
    deliveries: list[Delivery]
    next_due: float | None
    #: a concurrency cap (the queue's or a task's) left jobs behind: a lease ending frees a slot
    capped: bool = False
    #: workflow steps with successors that this fetch ended (expired): the worker tells them
    ended: Sequence[str] = ()


class Outcome(enum.StrEnum):
    OK = "ok"
    RETRY = "retry"
    DEAD = "dead"


@dataclasses.dataclass(slots=True)  # not frozen: a frozen __init__ costs per job settled
class Settlement:
    """The outcome of one run, to record: OK (result, max attempts), RETRY (next message, delay, error) or
    DEAD (reason, error, optionally a message to store)."""

    kind: Outcome
    id: str
    token: str
    result: bytes = b""
    #: an OK's: the job's max attempts, which its succeeded record keeps (it keeps no message)
    max_attempts: int = 0
    body: bytes = b""
    delay_ms: int = 0
    error: str = ""
    reason: str = ""
    #: a retry's: the first line of its error ("Type: message", for its event) and its next attempt
    summary: str = ""
    attempt: int = 0
    #: a retry's or dead's: what the run says of its partition's partner: "b<ms>" back off that long
    #: (and cut an adaptive limit), "s" cut an adaptive limit (a time limit), "" nothing
    signal: str = ""
    #: the run's log lines not sent yet (LogEntry.encode'd), stored in the same settle call
    lines: Sequence[str] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Recovered:
    requeued: int
    dead: int


@dataclasses.dataclass(frozen=True, slots=True)
class JobState:
    """A job's status and outcome fields, as result() reads them."""

    status: Status
    result: bytes | None = None
    error: str | None = None
    reason: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Progress:
    fraction: float
    text: str
    at_ms: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class JobRecord:
    """Everything stored about one job, decoded (the message stays packed)."""

    id: str
    queue: str
    status: Status | None
    message: bytes
    priority: int = 0
    enqueued_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    deliveries: int = 0
    lost: int = 0
    #: id of the worker holding its lease, if leased
    worker: str | None = None
    result: bytes | None = None
    error: str | None = None
    reason: str | None = None
    progress: Progress | None = None
    cancel_requested: bool = False
    fired_by: str | None = None
    #: a workflow step's place: "<flow id> <step> <steps>" (taskq/workflow.py), else None
    place: str | None = None
    #: a status that is not one of taskq's (a foreign writer's), kept as text
    raw_status: str | None = None
    #: the task's name and the attempt, as stored beside the message (a succeeded job's record
    #: keeps these, not its message: `message` is then empty)
    task: str | None = None
    attempt: int | None = None
    #: a succeeded job's max attempts, from its record (other jobs' is in their message)
    max_attempts: int | None = None
    #: the job's partition (options(partition=)), or None
    partition: str | None = None
    #: when it is due, while it waits in the scheduled set (scheduled, or a retry waiting), else None
    due_ms: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of a job's log (lua/lib/logs.lua): when, the level's name, the text."""

    at_ms: int
    level: str
    text: str

    def encode(self) -> str:
        """As Redis keeps it: '<unix ms> <LEVEL> <text>'."""
        return f"{self.at_ms} {self.level} {self.text}"

    @classmethod
    def decode(cls, raw: str) -> LogEntry:
        """A stored line (a foreign writer's odd one reads as its text, at 0, INFO)."""
        at, _, rest = raw.partition(" ")
        level, _, body = rest.partition(" ")
        return cls(int(at), level, body) if at.isdigit() and level else cls(0, "INFO", raw)


@dataclasses.dataclass(frozen=True, slots=True)
class Depths:
    """How many jobs a queue holds in each state."""

    ready: int = 0
    scheduled: int = 0
    reserved: int = 0
    running: int = 0
    dead: int = 0
    #: queued behind another job of their ordering key
    ordered: int = 0
    #: queued, held back by their task's own rate limit or cap
    held: int = 0
    #: partitions with jobs waiting in their lanes (a fair queue: every partition with ready jobs)
    partitions: int = 0

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, slots=True)
class Holds:
    """What a queue's flow limits hold back now (for `taskq status` and the metrics)."""

    #: jobs leased in the queue's rate-limit window (the last `window_ms` asked about)
    rate_starts: int = 0
    #: task -> its jobs held back by the task's own rate limit or cap
    by_task: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class Entry:
    """A job id in a sorted set with its time: dead since, or lease deadline (unix ms)."""

    id: str
    ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerRecord:
    """What a live worker says about itself."""

    id: str
    host: str = ""
    pid: int = 0
    queues: tuple[str, ...] = ()
    concurrency: int = 0
    processed: int = 0
    started_ms: int | None = None
    version: str = ""
    beat_ms: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the Redis server says of itself (INFO): every field None where it does not say
    (memory:// has no INFO; a managed Redis may hide some)."""

    version: str | None = None
    used_memory: int | None = None
    #: bytes; 0 means no limit
    max_memory: int | None = None
    #: what Redis does at max_memory: anything but "noeviction" may delete taskq's keys
    eviction_policy: str | None = None
    connected_clients: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Leader:
    beat_id: str
    lease_left_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the broker holds for one cron schedule."""

    spec: str
    #: unix ms of the newest tick claimed (fired or skipped), or of the reset
    last: int
    fired_ms: int | None = None
    job: str | None = None
    by: str | None = None
    #: the newest tick fired (not skipped), unix ms
    fired_tick: int | None = None
    #: the newest tick skipped because the previous run had not ended (overlap="skip"), unix ms
    skipped_tick: int | None = None
    paused: bool = False
    #: ticks fired (jobs made) since the schedule was first stored
    runs: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class StoredSchedule:
    """A schedule stored at run time (app.schedules.upsert): its definition as Redis keeps it,
    in its queue's slot, beside its claim state. `args` is the msgpack of [args, kwargs]."""

    id: str
    queue: str
    task: str
    #: a cron expression, or "" for an interval
    cron: str
    tz: str
    #: interval in ms (0 for cron)
    every_ms: int
    args: bytes
    start_ms: int | None = None
    end_ms: int | None = None
    limit: int | None = None
    overlap: str = "queue"
    catchup: str = "latest"
    #: each upsert stores a new revision
    rev: int = 0
    updated_ms: int = 0
    state: ScheduleState | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """One cron claim: `mode` the tick `tick_ms` of a schedule (with its job, when firing)."""

    queue: str
    name: str
    mode: ClaimMode
    tick_ms: int
    spec: str
    beat_id: str
    job_id: str = ""
    body: bytes = b""
    priority: int = 0
    #: skip the tick if the schedule's previous job has not ended (overlap="skip")
    skip_overlap: bool = False
    #: the task's name if it has its own limits (TaskLimit), else ""
    gate: str = ""
    #: the task's name (the job's record and events)
    task: str = ""
    #: the tick's job never starts later than this many ms after the tick (0: no deadline)
    expires_ms: int = 0
    #: or later than this unix ms (0: none)
    expires_at_ms: int = 0
    #: the task is at_most_once: a run its worker died in is dead-lettered, not run again
    at_most_once: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class Refill:
    """What settle_and_lease() leases, and under which limits (as in fetch)."""

    worker_id: str
    run: int
    suspect_lost: int = 2
    rate: tuple[int, int] | None = None
    max_running: int = 0
    limits: Sequence[TaskLimit] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class TaskLimit:
    """A task's own limits across every worker: at most `rate` (n, window ms) starts per sliding
    window and at most `max_running` (0: no cap) leased at once. They apply to the jobs enqueued
    with the task's name as their gate."""

    task: str
    rate: tuple[int, int] | None = None
    max_running: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """Lease length and how long ended jobs are kept: fixed when the broker is opened, and
    applied by every operation that leases or ends a job."""

    #: ms a lease lasts unless renewed (fetch, renew)
    lease_ms: int = 30_000
    result_ttl_ms: int = 3_600_000
    dead_ttl_ms: int = 7 * 86_400_000
    dead_max: int = 10_000
    #: times a job may lose its worker before it is dead-lettered as poison
    max_lost: int = 5
    #: ms a workflow step waits for its parents before its record expires (refreshed by each)
    flow_ttl_ms: int = 7 * 86_400_000


@dataclasses.dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of a queue's event stream (written by the script of the transition)."""

    queue: str
    #: the entry's stream id ("<ms>-<seq>"): where a reader resumes after it
    id: str
    #: "enqueued" "started" "progress" "retrying" "succeeded" "dead" "cancelled"
    kind: str
    job_id: str
    #: the task's name ("" if its producer did not say: a foreign producer's job)
    task: str
    attempt: int
    #: the broker's clock when it happened (unix ms, from the id)
    at_ms: int
    error: str | None = None
    reason: str | None = None
    delay_ms: int | None = None
    duration_ms: int | None = None
    progress: float | None = None
    text: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionLimits:
    """What app.queue() gives every partition of a queue (each may have its own instead)."""

    #: most jobs of one partition leased at once (0: no cap)
    max_running: int = 0
    #: (n, window ms): most starts of one partition per sliding window, or None
    rate: tuple[int, int] | None = None
    #: (start, max): an adaptive max_running (AIMD per partition), or None
    adaptive: tuple[int, int] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition of a queue as Redis has it."""

    queue: str
    name: str
    #: jobs in its lanes (a fair queue's ready jobs; any queue's jobs held by its limits)
    waiting: int
    #: its jobs leased now (running or reserved)
    running: int
    paused: bool
    #: backing off until this unix ms, or None
    until_ms: int | None
    #: its own limits (Partition.limit()), or None: the queue's apply
    own_max_running: int | None
    own_rate: tuple[int, int] | None
    #: an adaptive partition's limit now, or None
    adaptive_limit: float | None


@dataclasses.dataclass(frozen=True, slots=True)
class StatsMinute:
    """One minute of a queue's history, or of one task's in it (lua/lib/stats.lua): counts, and
    the sums and maxima of run and wait times in ms. `runs` is how many runs `runtime_ms` sums.
    An hour's (broker.stats_hours()) has the same fields: `minute` is its first minute."""

    minute: int  # unix time // 60
    enqueued: int = 0
    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    runs: int = 0
    runtime_ms: int = 0
    runtime_ms_max: int = 0
    wait_ms: int = 0
    wait_ms_max: int = 0
