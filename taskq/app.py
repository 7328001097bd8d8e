"""TaskQ: the app. Holds the broker, the task registry and the settings."""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from taskq.backoff import Backoff
from taskq.broker import Broker, Policy, open_broker, redact
from taskq.broker.base import DEFAULT_NAMESPACE, NAMESPACE_RE
from taskq.cron import CronSpec, EverySpec, Timing
from taskq.errors import ConfigError, JobNotFound, TaskNotFound
from taskq.events import JobEvent
from taskq.follow import Since, follow, follow_async
from taskq.hooks import H, Hooks, M
from taskq.job import Job
from taskq.limits import DEFAULT_EVENTS, DEFAULT_KEEP_ARGS, DEFAULT_KEEP_SUCCEEDED, Adaptive, OnFull, QueuePolicy
from taskq.message import MAX_MESSAGE_BYTES
from taskq.options import DEFAULT_RETRIES, TaskOptions, check_queue, named_options
from taskq.partitions import Partition, PartitionInfo, partitions
from taskq.produce import Producing
from taskq.schedule import MAX_CATCHUP, Catchup, Overlap, Schedule
from taskq.schedules import Schedules
from taskq.stats_views import StatsPoint, history
from taskq.task import AsyncTask, Task, TaskBase

P = ParamSpec("P")
R = TypeVar("R")


#: URL used when neither the argument nor $TASKQ_URL gives one
DEFAULT_URL = "redis://localhost:6379/0"


class TaskDecorator(Protocol):
    """What `@app.task(...)` returns: a decorator keeping the function's types."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


class TaskQ(Producing):
    """A taskq application: `@app.task` registers functions, `.delay()` enqueues them.

    Args:
        url: redis://, rediss://, unix:// or memory:// (in-process, no server);
            default $TASKQ_URL, else redis://localhost:6379/0.
        namespace: first part of every Redis key (default $TASKQ_NAMESPACE, else "taskq"):
            apps in different namespaces on one Redis never see each other's jobs, workers,
            schedules or beat leader.
        name: names this app's cron schedules in Redis, so a beat removes only its own app's
            stale schedules (default: the module that created the app).
        result_ttl: seconds results (and cancelled jobs) are kept.
        lease: seconds a fetched job is held before another worker may take it;
            workers renew it every lease/3 while the job runs.
        max_lost: times a job may lose its lease (worker died mid-run) before it
            is dead-lettered as poison.
        dead_ttl: seconds dead-lettered jobs are kept.
        dead_max: most dead-lettered jobs kept per queue (oldest dropped first).
        max_message_bytes: size limit of one packed message.
        timeout: seconds one Redis call may take (connecting, or waiting for a
            reply) before it fails with BrokerUnavailable; a call is tried twice,
            so `.delay()` against a dead or paused Redis raises within about 2x this.
        abort_grace: seconds a sync job under `taskq worker -p` may run on after
            job.abort() before its process is killed (the supervisor starts another).
    """

    def __init__(
        self, url: str | None = None, *, namespace: str | None = None, name: str | None = None,
        result_ttl: float = 3600, lease: float = 30, max_lost: int = 5, dead_ttl: float = 7 * 86400,
        dead_max: int = 10_000, max_message_bytes: int = MAX_MESSAGE_BYTES, timeout: float = 10.0,
        abort_grace: float = 10.0,
    ) -> None:
        if not result_ttl > 0 or not lease > 0 or not dead_ttl > 0:
            raise ConfigError("result_ttl, lease and dead_ttl must be > 0 seconds")
        if not timeout > 0:
            raise ConfigError("timeout must be > 0 seconds")
        if not abort_grace >= 0:
            raise ConfigError("abort_grace must be >= 0 seconds")
        if max_lost < 1 or dead_max < 1:
            raise ConfigError("max_lost and dead_max must be >= 1")
        self.url = url or os.environ.get("TASKQ_URL") or DEFAULT_URL
        self.namespace = _namespace(namespace or os.environ.get("TASKQ_NAMESPACE") or DEFAULT_NAMESPACE)
        self.name = name or _caller_module()
        self.result_ttl = result_ttl
        self.lease = lease
        self.max_lost = max_lost
        self.dead_ttl = dead_ttl
        self.dead_max = dead_max
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        #: seconds a sync job under `taskq worker -p` may run on after job.abort() before its
        #: process is killed (and replaced by the supervisor)
        self.abort_grace = abort_grace
        self.tasks: dict[str, TaskBase[Any, Any]] = {}
        #: the schedules `taskq beat` fires: declared in code (by name) and stored at run time
        self.schedules = Schedules(self)
        #: per-queue flow control declared with queue(), by queue name
        self.queue_policies: dict[str, QueuePolicy] = {}
        #: @app.on hooks and @app.middleware (taskq/hooks.py)
        self.hooks = Hooks()
        self._submits = weakref.WeakKeyDictionary()
        #: called with the queue after each sync enqueue (taskq.testing.eager runs the jobs there)
        self.after_submit: Callable[[str], None] | None = None
        self._broker: Broker | None = None
        #: threads that touch a new app's broker at once open one, not one each
        self._opening = threading.Lock()
        self._known_queues: set[str] = set()

    def __repr__(self) -> str:
        return f"<TaskQ {redact(self.url)} namespace={self.namespace!r} tasks={len(self.tasks)}>"

    @property
    def broker(self) -> Broker:
        """The broker, connected on first use (so importing an app does no I/O)."""
        broker = self._broker
        if broker is None:
            with self._opening:
                broker = self._broker
                if broker is None:
                    policy = Policy(lease_ms=int(self.lease * 1000), result_ttl_ms=int(self.result_ttl * 1000),
                                    dead_ttl_ms=int(self.dead_ttl * 1000), dead_max=self.dead_max,
                                    max_lost=self.max_lost)
                    broker = self._broker = open_broker(self.url, namespace=self.namespace, timeout=self.timeout,
                                                        policy=policy)
        return broker

    def configure(self, url: str | None = None, *, namespace: str | None = None) -> None:
        """Point the app at another broker URL or namespace (the CLI's --url, a test's own
        Redis); an open connection is closed, and the next call opens the new one."""
        if url is not None:
            self.url = url
        if namespace is not None:
            self.namespace = _namespace(namespace)
        if self._broker is not None:
            self._broker.close()
        self._broker = None
        self._known_queues = set()

    # -- registration -----------------------------------------------------

    def on(self, kind: str) -> Callable[[H], H]:
        """Register a hook: `@app.on("succeeded")` calls fn(event: taskq.JobEvent) for each such
        event in this process ("enqueued" in producers; "started", "succeeded", "retrying",
        "dead", "cancelled" in workers), on a background thread: it never slows or fails a job."""
        return self.hooks.on(kind)

    def middleware(self, fn: M) -> M:
        """Register middleware: fn(job: taskq.JobContext, call_next) wraps every attempt of every
        task (the first registered outermost) and returns what call_next() returns."""
        return self.hooks.add_middleware(fn)

    @named_options("app.queue")
    def queue(self, name: str, *, max_ready: int | None = None, on_full: OnFull = "raise",
              block_timeout: float = 30.0, rate_limit: str | None = None,
              max_running: int | None = None, events: bool | int = True,
              keep_succeeded: int | None = DEFAULT_KEEP_SUCCEEDED,
              partition_max_running: int | Adaptive | None = None, partition_rate_limit: str | None = None,
              fair: bool = False, keep_args: int = DEFAULT_KEEP_ARGS) -> QueuePolicy:
        """Declare a queue's flow control, enforced in Redis for every producer of this app.

        Args:
            max_ready: most ready jobs the queue may hold; an enqueue past it is refused with
                taskq.QueueFull and writes nothing (a bulk enqueue: all or nothing).
            on_full: "raise" at once, or "block": wait (no polling) up to block_timeout seconds
                for a worker to take jobs off the queue, then raise.
            rate_limit: "N/s", "N/m" or "N/h": at most N of the queue's jobs start per sliding
                window, across every worker; the rest stay ready and workers sleep until the
                window lets the next one go.
            max_running: at most that many of the queue's jobs running (or prefetched) at once
                across every worker; held by leases, so a dead worker's slots come back with them.
            events: the queue's event stream (app.events()): True keeps about 10 000 events,
                an int about that many, False writes none (each transition costs one XADD).
            keep_succeeded: the newest N succeeded job records the queue keeps (result(),
                info(), the dashboard), each also for at most result_ttl; an older one is deleted
                as a newer job succeeds. None: no cap. A record someone's result() waits on, and
                a workflow step's, are kept for result_ttl and not counted. A succeeded record
                keeps status, times, attempt, task and result; the arguments only while keep_args holds.
            partition_max_running: at most that many jobs of one partition (options(partition=))
                running at once across every worker, or taskq.Adaptive(start, max): a limit per
                partition that grows while its jobs succeed and is cut on RateLimited(partition=True)
                or a time limit.
            partition_rate_limit: "N/s", "N/m" or "N/h" per partition, across every worker.
            fair: partitions take turns (round robin, priorities still first): one partition's
                backlog never holds another's jobs back. Jobs without a partition form one of
                their own. app.partition(name, p).limit() gives one partition limits of its own.
            keep_args: the newest N of those succeeded records also keep their message (the
                arguments: `taskq job`, the dashboard, `--grep`); 0: none. Bounded: N messages.
        """
        check_queue(name)
        kept = DEFAULT_EVENTS if events is True else 0 if events is False else events
        policy = QueuePolicy(name, max_ready, on_full, block_timeout, rate_limit, max_running, kept, keep_succeeded,
                             partition_max_running, partition_rate_limit, fair, keep_args)
        self.queue_policies[name] = policy
        return policy

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, queue: str = "default",
        retries: int = ..., backoff: Backoff | None = None, timeout: float | None = None,
        priority: int = 0, cron: str | None = None, every: float | dt.timedelta | None = None,
        tz: str = "UTC", catchup: Catchup = "latest", overlap: Overlap = "queue",
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        dont_retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        rate_limit: str | None = None, max_running: int | None = None,
        expires: float | dt.timedelta | dt.datetime | None = None, at_most_once: bool = False,
        keep_logs: bool = True,
    ) -> TaskDecorator: ...

    @named_options("app.task")
    def task(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
        queue: str = "default", retries: int | None = None, backoff: Backoff | None = None,
        timeout: float | None = None, priority: int = 0, cron: str | None = None,
        every: float | dt.timedelta | None = None, tz: str = "UTC", catchup: Catchup = "latest",
        overlap: Overlap = "queue",
        retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        dont_retry_on: type[BaseException] | tuple[type[BaseException], ...] = (),
        rate_limit: str | None = None, max_running: int | None = None,
        expires: float | dt.timedelta | dt.datetime | None = None, at_most_once: bool = False,
        keep_logs: bool = True,
    ) -> Any:
        """Register a function as a task, bare (`@app.task`) or with options.

        Args:
            name: registry name; default the function's __name__ (unique per app).
            queue: queue the task's jobs go to.
            retries: retries after a failed first attempt (default 3).
            backoff: delay between retries (default Backoff()).
            timeout: seconds a run may take (see docs on how it is enforced).
            priority: 0-9, higher runs first within a queue.
            retry_on: retry only failures of these exception types (others are dead-lettered
                at once, reason `not_retried`); dont_retry_on: never retry these.
            rate_limit: "N/s", "N/m" or "N/h": at most N of the task's jobs start per sliding
                window, across every worker (the rest wait, queued, for the window).
            max_running: at most N of the task's jobs running (or prefetched) at once, across
                every worker; held by leases, so a dead worker's slots come back with them.
            expires: a job not started within these seconds (or timedelta) of its due time, or by
                this datetime, never starts: it ends cancelled, reason "expired: ..." (a cron
                tick's job: of its tick). Per call: `task.options(expires=)`.
            at_most_once: a job whose worker died while running it is dead-lettered, reason
                "lost: at_most_once", instead of run again (failures still retry per retries).
            keep_logs: False: its jobs keep no log lines (current_job().log() and its stdlib
                records are dropped; they still reach the worker's own log output).
            cron: fire the task (with no arguments) on this schedule, under `taskq beat`;
                the schedule is named like the task. tz, catchup and overlap: see schedule().
            every: or fire it every so many seconds (or a timedelta), on multiples of it from
                the epoch (every=60: on the minute).
        """
        if cron is None and every is None and (tz != "UTC" or catchup != "latest" or overlap != "queue"):
            raise ConfigError("tz=, catchup= and overlap= need cron= or every=")
        options = TaskOptions(
            queue=queue, retries=DEFAULT_RETRIES if retries is None else retries,
            backoff=backoff or Backoff(), timeout=timeout, priority=priority,
            retry_on=_types(retry_on), dont_retry_on=_types(dont_retry_on) or (),
            rate_limit=rate_limit, max_running=max_running, expires=expires, at_most_once=at_most_once,
            keep_logs=keep_logs,
        )

        def register(func: Callable[..., Any]) -> Any:
            if not callable(func):
                raise ConfigError(f"@app.task needs a function, got {func!r}")
            task_name = name or func.__name__
            if task_name in self.tasks and self.tasks[task_name].fn is not func:
                raise ConfigError(f"task name {task_name!r} is already registered; pass name=")
            cls = AsyncTask if _is_async(func) else Task
            task: TaskBase[Any, Any] = cls(self, func, task_name, options)
            self.tasks[task_name] = task
            if cron is not None or every is not None:
                try:
                    self.schedule(task_name, task, cron=cron, every=every, tz=tz, catchup=catchup, overlap=overlap)
                except ConfigError:
                    del self.tasks[task_name]  # nothing half-registered
                    raise
            return task

        return register if fn is None else register(fn)

    def schedule(
        self, name: str, task: TaskBase[Any, Any], *, cron: str | None = None,
        every: float | dt.timedelta | None = None, args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None, tz: str = "UTC", catchup: Catchup = "latest",
        max_catchup: int = MAX_CATCHUP, overlap: Overlap = "queue",
    ) -> Schedule:
        """Fire `task(*args, **kwargs)` on a cron schedule (or `every` so many seconds), under
        `taskq beat`. Schedules changed at run time, not in code: `app.schedules.upsert()`.

        Args:
            name: unique schedule name (the state in Redis is kept under it).
            cron: 5 fields (minute hour day month weekday) or 6 with seconds last.
            tz: IANA time zone the expression is read in (default UTC); see taskq.cron
                for the DST rule.
            catchup: after downtime, "latest" fires the most recent missed tick once,
                "all" the missed ticks (at most max_catchup, the most recent), "none" none.
            overlap: "queue" (default) enqueues every tick; "skip" records a tick whose previous
                run is still queued or running as skipped, with no job.
        Raises ConfigError, naming the schedule, for a bad expression, zone or argument.
        """
        if not isinstance(name, str) or name in self.schedules:
            raise ConfigError(f"schedule {name!r} is already registered" if isinstance(name, str)
                              else f"schedule name must be a string, got {name!r}")
        if not isinstance(task, TaskBase) or self.tasks.get(task.name) is not task:
            raise ConfigError(f"schedule {name!r}: {task!r} is not a task of this app")
        if (cron is None) == (every is None):
            raise ConfigError(f"schedule {name!r}: give cron= or every=, not {'both' if cron else 'neither'}")
        if every is not None and tz != "UTC":
            raise ConfigError(f"schedule {name!r}: tz= is for cron=; every= counts seconds")
        timing: Timing = CronSpec(cron, tz, name=name) if cron is not None else EverySpec(
            every if every is not None else 0, name=name)
        entry = Schedule(name, task, timing, tuple(args), dict(kwargs or {}), catchup, max_catchup,
                         self.max_message_bytes, overlap)
        self.schedules.declare(entry)
        return entry

    def get_task(self, name: str) -> TaskBase[Any, Any]:
        """The registered task of that name; raises TaskNotFound."""
        try:
            return self.tasks[name]
        except KeyError:
            raise TaskNotFound(f"no task named {name!r} is registered in this app") from None

    def job(self, job_id: str, queue: str | None = None) -> Job[Any]:
        """A handle on an existing job by id. Without `queue`, the job is looked up in every
        known queue at once (one round trip); raises JobNotFound if no queue has it."""
        if queue is not None:
            return Job(self.broker, queue, job_id, self.hooks)
        queues = self.known_queues()
        holding = self.broker.queues_holding(job_id, queues)
        if not holding:
            raise JobNotFound(f"no job {job_id} in any queue ({', '.join(queues) or 'none known'}): "
                              "never enqueued, or its record expired")
        return Job(self.broker, holding[0], job_id, self.hooks)

    def events(self, queues: Sequence[str] | None = None, *, since: Since = "$",
               timeout: float | None = None) -> Iterator[JobEvent]:
        """Follow the queues' event streams (default: every known queue): each transition of
        each job (enqueued, started, progress, retrying, succeeded, dead, cancelled) as a
        taskq.JobEvent, written by the script that made it, in order per queue. Blocks between
        events without polling; ends after `timeout` seconds without one (None: never).

        Args:
            since: "$" what happens from now on, "0" the oldest event kept, an event id
                (`event.event_id`) or a mapping queue -> event id: resume after it.
        """
        return follow(self.broker, list(queues or self.known_queues()), since, timeout)

    def events_async(self, queues: Sequence[str] | None = None, *, since: Since = "$",
                     timeout: float | None = None) -> AsyncIterator[JobEvent]:
        """events() for code on an event loop: `async for event in app.events_async(...)`."""
        return follow_async(self.broker.aio, list(queues or self.known_queues()), since, timeout)

    def stats(self, queue: str | None = None, task: str | None = None, since: float | dt.timedelta = 3600,
              step: float | dt.timedelta = 60) -> list[StatsPoint]:
        """The history of one queue (None: every known queue, summed), or of one task in it,
        over the last `since` seconds in points `step` seconds apart (60 or a multiple): oldest
        first, zero-filled. Counted by the scripts that move the jobs, per minute (kept 25 hours)
        and per hour (kept 8 days): a step of whole hours reads hours and starts on the hour; over
        a window longer than a day any other step is rounded up to whole hours (stats_views.history)."""
        if queue is not None:
            check_queue(queue)
        return history(self.broker, [queue] if queue else self.known_queues(), task=task, since=since, step=step)

    def partition(self, queue: str, name: str) -> Partition:
        """A handle on one partition of a queue: its own limits, pause, resume, backoff, info."""
        check_queue(queue)
        return Partition(self.broker, queue, name)

    def partitions(self, queue: str, limit: int = 100) -> list[PartitionInfo]:
        """The queue's partitions with jobs waiting (largest backlog first), then paused or
        backing-off ones; at most `limit`."""
        check_queue(queue)
        return partitions(self.broker, queue, limit)

    def known_queues(self) -> list[str]:
        """Every queue the broker knows of (enqueued to or consumed) plus the app's own, sorted."""
        return sorted(set(self.broker.queues()) | set(self.queues))

    @property
    def queues(self) -> list[str]:
        """Queues of the registered tasks, sorted."""
        return sorted({t.opts.queue for t in self.tasks.values()})


def _types(value: Any) -> Any:
    """An exception class given alone, as a one-class tuple (anything else as it is, to check)."""
    return (value,) if isinstance(value, type) else value


def _namespace(value: str) -> str:
    if not isinstance(value, str) or not NAMESPACE_RE.fullmatch(value):
        raise ConfigError(f"namespace must be 1-64 letters, digits, '_', '.' or '-', got {value!r}")
    return value


def _caller_module() -> str:
    """The module that called TaskQ(): the default app name (a script run directly: its file name)."""
    frame = sys._getframe(2)
    module = str(frame.f_globals.get("__name__", "app"))
    if module == "__main__":
        module = os.path.splitext(os.path.basename(str(frame.f_globals.get("__file__", "main"))))[0]
    return module


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)
