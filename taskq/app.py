"""TaskQ: the app. Holds the broker, the task registry and the settings."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar, overload

from taskq.backoff import Backoff
from taskq.broker import RedisBroker, open_broker
from taskq.errors import ConfigError, TaskNotFound
from taskq.job import Job
from taskq.message import MAX_MESSAGE_BYTES, Message, pack
from taskq.task import DEFAULT_RETRIES, AsyncTask, Task, TaskBase, TaskOptions

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


class TaskQ:
    """A taskq application: `@app.task` registers functions, `.delay()` enqueues them.

    Args:
        url: redis://, rediss://, unix:// or memory:// (in-process, no server);
            default $TASKQ_URL, else redis://localhost:6379/0.
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
    """

    def __init__(
        self, url: str | None = None, *, result_ttl: float = 3600, lease: float = 30,
        max_lost: int = 5, dead_ttl: float = 7 * 86400, dead_max: int = 10_000,
        max_message_bytes: int = MAX_MESSAGE_BYTES, timeout: float = 10.0,
    ) -> None:
        self.url = url or os.environ.get("TASKQ_URL") or DEFAULT_URL
        if not result_ttl > 0 or not lease > 0 or not dead_ttl > 0:
            raise ConfigError("result_ttl, lease and dead_ttl must be > 0 seconds")
        if not timeout > 0:
            raise ConfigError("timeout must be > 0 seconds")
        if max_lost < 1 or dead_max < 1:
            raise ConfigError("max_lost and dead_max must be >= 1")
        self.result_ttl = result_ttl
        self.lease = lease
        self.max_lost = max_lost
        self.dead_ttl = dead_ttl
        self.dead_max = dead_max
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        self.tasks: dict[str, TaskBase[Any, Any]] = {}
        self._broker: RedisBroker | None = None
        self._known_queues: set[str] = set()

    def __repr__(self) -> str:
        return f"<TaskQ {self.url} tasks={len(self.tasks)}>"

    @property
    def broker(self) -> RedisBroker:
        """The broker, connected on first use (so importing an app does no I/O)."""
        if self._broker is None:
            self._broker = open_broker(self.url, self.timeout)
        return self._broker

    # -- registration -----------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncTask[P, R]: ...  # type: ignore[overload-overlap]
    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = None, queue: str = "default",
        retries: int = ..., backoff: Backoff | None = None, timeout: float | None = None,
        priority: int = 0,
    ) -> TaskDecorator: ...

    def task(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
        queue: str = "default", retries: int | None = None, backoff: Backoff | None = None,
        timeout: float | None = None, priority: int = 0,
    ) -> Any:
        """Register a function as a task, bare (`@app.task`) or with options.

        Args:
            name: registry name; default the function's __name__ (unique per app).
            queue: queue the task's jobs go to.
            retries: retries after a failed first attempt (default 3).
            backoff: delay between retries (default Backoff()).
            timeout: seconds a run may take (see docs on how it is enforced).
            priority: 0-9, higher runs first within a queue.
        """
        options = TaskOptions(
            queue=queue, retries=DEFAULT_RETRIES if retries is None else retries,
            backoff=backoff or Backoff(), timeout=timeout, priority=priority,
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
            return task

        return register if fn is None else register(fn)

    def get_task(self, name: str) -> TaskBase[Any, Any]:
        """The registered task of that name; raises TaskNotFound."""
        try:
            return self.tasks[name]
        except KeyError:
            raise TaskNotFound(f"no task named {name!r} is registered in this app") from None

    # -- producing --------------------------------------------------------

    def submit(
        self, task: TaskBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
        queue: str, priority: int, delay: float, at: dt.datetime | None, key: str | None,
    ) -> Job[Any]:
        """Validate, pack and enqueue one call (used by TaskCall.delay)."""
        task.check_args(args, kwargs)
        message = Message(
            id=uuid.uuid4().hex, task=task.name, queue=queue, args=args, kwargs=kwargs,
            attempt=1, max_attempts=task.opts.retries + 1, enqueued_at=time.time(),
            priority=priority, timeout=task.opts.timeout, key=key,
        )
        body = pack(message, self.max_message_bytes)  # raises before any I/O
        at_ms = 0
        if at is not None:
            stamp = at if at.tzinfo is not None else at.astimezone()
            at_ms = max(1, int(stamp.timestamp() * 1000))
        if queue not in self._known_queues:
            self.broker.register_queues([queue])
            self._known_queues.add(queue)
        job_id, _ = self.broker.enqueue(
            queue, message.id, body, priority=priority, delay_ms=int(delay * 1000), at_ms=at_ms, key=key,
        )
        return Job(self.broker, queue, job_id, self.result_ttl_ms)

    def job(self, job_id: str, queue: str = "default") -> Job[Any]:
        """A handle on an existing job by id."""
        return Job(self.broker, queue, job_id, self.result_ttl_ms)

    @property
    def result_ttl_ms(self) -> int:
        return int(self.result_ttl * 1000)

    @property
    def queues(self) -> list[str]:
        """Queues of the registered tasks, sorted."""
        return sorted({t.opts.queue for t in self.tasks.values()})


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)
