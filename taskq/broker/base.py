"""The broker contract: typed records and enums, and one Protocol per role.

The library face, the worker, beat and the read model depend on these Protocols, never on an
implementation. Every implementation (memory://, Redis, and later Redis Cluster and Sentinel)
passes one contract test suite (tests/test_broker.py). Times are unix milliseconds of the
broker's own clock; "token" is a lease token (`<worker id>:<delivery number>`) that fences
every move of a leased job, so a stale holder's late call is refused.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import Protocol

from taskq.broker.placement import Move, NewJob, Placement
from taskq.broker.records import (
    CANCELLABLE,
    DEFAULT_NAMESPACE,
    NAMESPACE_RE,
    TERMINAL,
    Claim,
    ClaimMode,
    ClaimResult,
    Delivery,
    Depths,
    Entry,
    EventRecord,
    Fetched,
    Holds,
    JobRecord,
    JobState,
    Leader,
    LeadResult,
    LogEntry,
    Outcome,
    PartitionLimits,
    PartitionState,
    Policy,
    Progress,
    Recovered,
    Refill,
    ScheduleState,
    ServerFacts,
    Settled,
    Settlement,
    StatsMinute,
    Status,
    StoredSchedule,
    TaskLimit,
    WorkerRecord,
)
from taskq.broker.step_records import Arrival, EndedStep, FlowStep, StepRef

__all__ = [
    "CANCELLABLE",
    "DEFAULT_NAMESPACE",
    "NAMESPACE_RE",
    "Arrival",
    "Claim",
    "ClaimMode",
    "ClaimResult",
    "Delivery",
    "Depths",
    "EndedStep",
    "Entry",
    "EventRecord",
    "FlowStep",
    "Fetched",
    "Holds",
    "JobRecord",
    "JobState",
    "LeadResult",
    "Leader",
    "LogEntry",
    "Move",
    "NewJob",
    "Outcome",
    "PartitionLimits",
    "PartitionState",
    "Placement",
    "Policy",
    "Progress",
    "Recovered",
    "Refill",
    "ScheduleState",
    "ServerFacts",
    "StatsMinute",
    "StoredSchedule",
    "Settled",
    "Settlement",
    "Status",
    "StepRef",
    "TERMINAL",
    "TaskLimit",
    "WorkerRecord",
]


class Producer(Protocol):
    def enqueue(self, job: NewJob, *, max_ready: int = 0) -> str:
        """Store a job; return its id, or the id of the live job already holding its key. With
        max_ready, raise QueueFull (nothing written) if the queue already holds that many ready.
        With an ordering key, the job runs after every job of that key that entered the queue
        before it has ended; a gate names the task whose TaskLimit applies to the job; a job not
        started by its placement's deadline ends cancelled ("expired: ...") instead."""

    def enqueue_many(self, jobs: Sequence[NewJob], *, max_ready: int = 0) -> int:
        """Store new jobs of one queue (no dedup keys), in order; all or nothing per placement
        and batch (with max_ready: one batch per placement, refused whole with QueueFull if it
        would pass the limit). How many were stored (a batch stored before counts 0)."""

    def wait_room(self, queue: str, timeout: float) -> bool:
        """Block until a fetch makes room in a queue that refused a job for max_ready."""

    def register_queues(self, queues: Sequence[str]) -> None:
        """Remember queue names, for the operator views."""


class Consumer(Protocol):
    def fetch(self, queue: str, run: int, reserve: int, worker_id: str,
              start: Sequence[tuple[str, str]] = (), *, suspect_lost: int = 2,
              rate: tuple[int, int] | None = None, max_running: int = 0,
              limits: Sequence[TaskLimit] = ()) -> Fetched:
        """Start the reserved (id, token) jobs in `start`, then lease up to `run` jobs as running
        and `reserve` more as reserved; promote due scheduled jobs first. With `rate` (n, window
        ms), at most n jobs of the queue are leased per sliding window across every worker, and
        next_due says when the window lets the next one go. With max_running, at most that many
        of the queue's jobs are leased (running or reserved) at once across every worker.
        `limits` hold the same for the jobs of one task each (those enqueued with its gate); a job
        over its task's limit stays queued, unleased, until the task has room."""

    def wait(self, queues: Sequence[str], worker_id: str, timeout: float) -> list[str] | None:
        """Block until a wake-up token arrives on any queue (or for this worker): the queues whose
        token was taken (none if it was this worker's own wake-up), or None on timeout."""

    def wake(self, worker_id: str, queues: Sequence[str]) -> None:
        """Interrupt the blocking wait of a worker that consumes `queues`."""

    def wait_abort(self, worker_id: str, timeout: float) -> bool:
        """Block until an abort of a job this worker runs is asked (or wake_abort), or `timeout`."""

    def wake_abort(self, worker_id: str) -> None:
        """End a worker's wait_abort() (its lease keeper's wait between renewals)."""

    def settle(self, queue: str, outcomes: Sequence[Settlement]) -> list[Settled]:
        """Record finished runs of one queue in one call; one result per outcome, in order."""

    def settle_and_lease(self, queue: str, outcomes: Sequence[Settlement],
                         refill: Refill) -> tuple[list[Settled], list[Delivery]]:
        """settle(), then lease up to `refill.run` jobs as running to the worker (at most one per
        outcome recorded) under the same limits as fetch: the slots a cap holds, filled in the
        same call."""

    def renew(self, queue: str, held: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Extend the leases of (id, token) pairs; return the pairs whose lease was lost."""

    def renew_leases(self, queue: str,
                     held: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """renew(), and of the renewed pairs the ones whose job an abort was asked for."""

    def release(self, queue: str, held: Sequence[tuple[str, str]], *, ran: bool = False) -> int:
        """Give (id, token) jobs back to the front of their ready lists, unblamed. With `ran` (their
        bodies may have started: interrupted), a running job of an at_most_once task is
        dead-lettered instead ("lost: at_most_once"). How many went back."""

    def recover(self, queue: str, limit: int = 500, *, worker: str = "") -> Recovered:
        """Requeue jobs whose lease lapsed (or, given `worker`, every job that worker holds)."""

    def progress(self, queue: str, job_id: str, token: str, fraction: float, text: str,
                 lines: Sequence[str] = ()) -> bool:
        """Store a running job's progress, and the log lines it wrote since its last batch
        (LogEntry.encode'd; stored whatever the token); False if this delivery no longer holds the job."""

    def append_logs(self, queue: str, lines: Mapping[str, Sequence[str]]) -> int:
        """Append each job's new log lines (job id -> encoded lines, oldest first) in one call;
        the newest 100 of a job are kept, expiring with its record. How many were stored."""


class AsyncHandles(Protocol):
    """Handles on an event loop (redis-py's asyncio client); as Handles."""

    async def state(self, queue: str, job_id: str, *, watch: bool = False) -> JobState | None: ...
    async def wait_done(self, queue: str, job_id: str, timeout: float) -> bool: ...
    async def cancel(self, queue: str, job_id: str) -> Status | None: ...
    async def move(self, queue: str, job_id: str, move: Move) -> tuple[Status | None, bool]: ...
    async def job(self, queue: str, job_id: str) -> JobRecord | None: ...
    async def job_logs(self, queue: str, job_id: str) -> list[LogEntry]: ...


class AsyncClient(AsyncHandles, Protocol):
    """The producer's calls and the handles on an event loop (`broker.aio`), as the sync ones."""

    async def enqueue(self, job: NewJob, *, max_ready: int = 0) -> str: ...
    async def enqueue_many(self, jobs: Sequence[NewJob], *, max_ready: int = 0) -> int: ...
    def enqueue_batch(self, jobs: Sequence[NewJob]) -> Awaitable[list[str | BaseException]]:
        """Hand the jobs (of any queues, no max_ready) to the loop's next pipelined flush now; the
        awaitable gives each job's id (the key holder's, for a keyed one) or the taskq error of
        the call that carried it, in order."""
    async def wait_room(self, queue: str, timeout: float) -> bool: ...
    async def register_queues(self, queues: Sequence[str]) -> None: ...
    async def set_retention(self, queue: str, events: int, succeeded: int | None, args: int = 1000) -> None: ...
    async def event_heads(self, queues: Sequence[str]) -> dict[str, str]: ...
    def read_sets(self, queues: Sequence[str]) -> list[list[str]]: ...
    async def read_events(self, positions: Mapping[str, str], timeout: float,
                          count: int = 500) -> list[EventRecord]: ...
    async def aclose(self) -> None:
        """Close the running event loop's client."""


class Handles(Protocol):
    @property
    def aio(self) -> AsyncClient:
        """The same calls for code on an event loop."""

    def state(self, queue: str, job_id: str, *, watch: bool = False) -> JobState | None:
        """The job's status and outcome; with watch, ask to be woken when it ends."""

    def wait_done(self, queue: str, job_id: str, timeout: float) -> bool:
        """Block until the job has ended (after a watching state()); False on timeout."""

    def cancel(self, queue: str, job_id: str, *, abort: str | None = None) -> Status | None:
        """Cancel a job; the status it had, or None if there is no such job. With `abort` (who
        asks), a running job is stopped as well: its worker learns it when it renews the lease."""

    def move(self, queue: str, job_id: str, move: Move) -> tuple[Status | None, bool]:
        """Give a job that has not started (queued, scheduled, or reserved: taken back from the
        worker that prefetched it, which then never starts it) a new due time or priority: the
        status it had (None: no such job) and whether it changed (a running, retrying or ended job
        does not)."""

    def queues_holding(self, job_id: str, queues: Sequence[str]) -> list[str]:
        """Which of `queues` have a record of this job id."""

    def job(self, queue: str, job_id: str) -> JobRecord | None:
        """Everything stored about one job (one round trip), or None."""

    def job_logs(self, queue: str, job_id: str) -> list[LogEntry]:
        """The job's kept log lines, oldest first (none once its record expired)."""


class Inspector(Protocol):
    def queues(self) -> list[str]:
        ...

    def depths(self, queue: str) -> Depths:
        ...

    def dead(self, queue: str, limit: int | None = 100) -> list[Entry]:
        """Dead-lettered jobs with the time they died, newest first (every one with limit None)."""

    def running(self, queue: str, limit: int = 100) -> list[Entry]:
        """Leased jobs (running or reserved) with their lease deadline, the longest-held first."""

    def job_ids(self, queue: str, state: str, offset: int = 0, limit: int = 50) -> list[str]:
        """Ids of a queue's jobs in one state, a page at a time: "ready" (in the order they will
        run), "scheduled" (soonest due first), "running" (leased: running or reserved), "dead",
        "succeeded" and "cancelled" (newest first; the ids the queue's capped lists still hold,
        whose records may have expired)."""

    def job(self, queue: str, job_id: str) -> JobRecord | None:
        ...

    def jobs(self, queue: str, job_ids: Sequence[str]) -> list[JobRecord | None]:
        """job() of several jobs in one round trip."""

    def oldest_ready_ms(self, queue: str) -> int | None:
        """When the job next in line was enqueued."""

    def holds(self, queue: str, window_ms: int = 0, now_ms: int | None = None) -> Holds:
        """The queue's leases in the `window_ms` before `now_ms` (the broker's clock; None: read
        it) and the jobs held back per task by the task's own limits."""

    def replay(self, queue: str, job_id: str, body: bytes) -> bool:
        """Put a dead job back on its ready list with a fresh message; False if it is not dead."""

    def purge(self, queue: str, job_ids: Sequence[str]) -> int:
        """Delete dead jobs for good; ids that are not dead are left alone. Returns how many."""

    def pause(self, queue: str, paused: bool = True) -> bool:
        """Stop (or, paused=False, start again) leasing from a queue for every worker; whether
        that changed it."""

    def paused(self, queues: Sequence[str]) -> set[str]:
        """Which of these queues are paused."""

    def server_facts(self) -> ServerFacts:
        """The server's version, memory, eviction policy and clients (a Cluster: the node first asked)."""

    def empty(self, queue: str, reason: str, batch: int = 1000) -> int:
        """Cancel every job of the queue not started (ready, held, scheduled); how many."""

    def stats(self, queue: str, first_minute: int, last_minute: int, task: str | None = None) -> list[StatsMinute]:
        """The queue's history (one task's, given `task`) from one unix minute to another, both
        included, oldest first: only the minutes that have any (kept 25 hours)."""

    def stats_hours(self, queue: str, first_hour: int, last_hour: int, task: str | None = None) -> list[StatsMinute]:
        """The same by the hour (sums of the hour's minutes, maxima kept), from one unix hour to
        another, both included, oldest first: only the hours that have any (kept 8 days); each
        record's `minute` is its hour's first minute."""


class Events(Protocol):
    """Each queue's event stream: one entry per job transition, written by the transition."""

    def set_retention(self, queue: str, events: int, succeeded: int | None, args: int = 1000) -> None:
        """What the queue keeps: about `events` events (0: none are written), its newest
        `succeeded` succeeded job records (None: each until its result_ttl), and how many of the
        newest of those keep their message (`args`, keep_args)."""

    def event_heads(self, queues: Sequence[str]) -> dict[str, str]:
        """Each queue's newest event id ("0-0" if none)."""

    def read_sets(self, queues: Sequence[str]) -> list[list[str]]:
        """`queues` split into the sets one read_events() call may name together (a follower
        keeps one blocking reader per set); each queue in exactly one set."""

    def read_events(self, positions: Mapping[str, str], timeout: float, count: int = 500) -> list[EventRecord]:
        """Events after each queue's position, oldest first; blocks up to `timeout` s for one.
        The queues are those of one read_sets() set."""

    def events_between(self, queue: str, since_ms: int, count: int = 20_000) -> list[EventRecord]:
        """The queue's events from since_ms on, oldest first (what the stream still holds)."""

    def stream_length(self, queue: str) -> int:
        ...


class Workflows(Protocol):
    """Workflow steps (taskq/workflow.py): stored up front, continued through each queue's outbox."""

    def stage(self, steps: Sequence[tuple[str, FlowStep]]) -> int:
        """Store (queue, step)s, in order per queue: ready if they have no parents, else waiting.
        How many were new."""

    def ended_steps(self, queue: str, ids: Sequence[str] = (), n: int = 100,
                    min_age_ms: int = 0) -> list[EndedStep]:
        """The steps named in the queue's outbox (or its oldest n at least min_age_ms old), with
        what their successors need."""

    def arrive(self, arrivals: Sequence[tuple[StepRef, bool, bytes | str]]) -> list[Arrival]:
        """Tell successors (step, ok, payload) that their parent succeeded (ok, its packed result)
        or failed (the reason); what it did to each."""

    def outbox_done(self, queue: str, steps: Sequence[EndedStep]) -> int:
        """Remove the outbox entries of steps whose successors were told (unless one ended again)."""


class Partitions(Protocol):
    """Partitions of a queue (lua/lib/part.lua): limits per partition, fair turns between them."""

    def set_partitioning(self, queue: str, fair: bool, limits: PartitionLimits | None) -> None:
        """Whether the queue is fair, and what every partition may do unless it has its own limits."""

    def limit_partition(self, queue: str, partition: str, max_running: int | None,
                        rate: tuple[int, int] | None) -> None:
        """The partition's own limits (None: the queue's again)."""

    def pause_partition(self, queue: str, partition: str, paused: bool = True) -> bool:
        """No job of the partition starts (paused=False: they may again); whether that changed it."""

    def back_off_partition(self, queue: str, partition: str, ms: int) -> None:
        """No job of the partition starts for `ms` (0 ends a backoff)."""

    def partition_state(self, queue: str, partition: str) -> PartitionState:
        ...

    def partition_names(self, queue: str, limit: int = 100) -> list[str]:
        """Partitions with jobs waiting, the largest backlog first, then paused or backing off ones."""

    def partition_limits(self, queue: str) -> PartitionLimits | None:
        """What set_partitioning() stored, or None."""


class Registry(Protocol):
    def heartbeat(self, worker_id: str, ttl_ms: int, info: Mapping[str, str | int] | None = None) -> None:
        """Say this worker is live for ttl_ms more (with its info); ttl_ms 0 deregisters it."""

    def live_workers(self) -> list[WorkerRecord]:
        ...


class Schedules(Protocol):
    def time_ms(self) -> int:
        """The broker's clock: the one clock for ticks, due times and leases."""

    def lead(self, beat_id: str, lease_ms: int) -> LeadResult:
        ...

    def resign(self, beat_id: str) -> bool:
        """Give the leader lease up, if this beat holds it."""

    def leader(self) -> Leader | None:
        ...

    def schedule_state(self, queue: str, name: str) -> ScheduleState | None:
        ...

    def fire_many(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        """Several claims (each atomic on its own) in one round trip."""

    def index_schedules(self, app: str, schedules: Mapping[str, str]) -> dict[str, tuple[str, str]]:
        """Record name -> queue of an app's schedules; return what was recorded before, as
        name -> (queue, app)."""

    def remove_schedule(self, name: str, queue: str, *, unindex: bool = True) -> None:
        ...

    def put_schedule(self, s: StoredSchedule, fingerprint: str) -> tuple[int, int] | None:
        """Store a new revision of a run-time schedule: (rev, newest claimed tick), or None if
        a schedule declared in code has its id. A new timing counts from the first tick at
        least 1 s away (and not before s.start_ms); the same timing keeps its sequence."""

    def pause_schedule(self, queue: str, name: str, paused: bool, *, create: bool = False) -> bool:
        """Pause or resume a schedule (stored or declared in code); False if there is none."""

    def drop_schedule(self, schedule_id: str) -> bool:
        """Remove a stored schedule; False if there is none."""

    def stored_schedule_queues(self) -> dict[str, str]:
        """id -> queue of every stored schedule."""

    def stored_schedules(self, ids: Mapping[str, str]) -> list[StoredSchedule]:
        """The stored definitions (with their state) of these schedules (id -> queue)."""

    def schedules_rev(self) -> int:
        """A counter that moves with every change of a stored schedule, pause or resume."""

    def promote(self, queue: str, limit: int = 1000) -> tuple[int, int | None]:
        """Move due scheduled jobs to ready: (how many, ms until the next is due or None)."""

    def advance(self, queue: str, ms: int) -> int:
        """For tests: every scheduled job of the queue falls due `ms` sooner (how many moved)."""


class Broker(Producer, Consumer, Handles, Inspector, Events, Workflows, Partitions, Registry, Schedules, Protocol):
    """Every role: what `open_broker(url)` returns."""

    url: str
    namespace: str
    policy: Policy

    def ping(self) -> None:
        """Raise BrokerUnavailable unless the broker answers."""

    def close(self) -> None:
        ...
