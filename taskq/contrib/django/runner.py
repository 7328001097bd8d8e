"""A Django task as the function of a taskq task: what a worker runs for one of its jobs.

The function calls the Django task (with a TaskContext first if it takes one), sends Django's
task_started and task_finished signals, and returns the envelope of taskq.contrib.django.mapping
(the return value with the call's arguments). Its signature is the Django function's without
the context and without annotations, so taskq checks a call's arguments as it enqueues them.
"""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections
from django.utils import timezone

from taskq.context import current_job, running
from taskq.contrib.django.compat import (
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)
from taskq.contrib.django.mapping import envelope
from taskq.execute import traceback_text

#: what `worker_ids` holds for an attempt whose worker taskq does not keep (Django counts
#: attempts by the length of that list)
UNKNOWN_WORKER = "unknown"


def runner(task: Any, alias: str, sender: type) -> Callable[..., Any]:
    """The function the backend registers on its taskq app for the Django task `task`."""
    if inspect.iscoroutinefunction(task.func):
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            attempt = _Attempt(task, alias, sender, args, kwargs)
            try:
                value = await task.acall(*attempt.context, *args, **kwargs)
                return attempt.succeeded(value)
            except BaseException as exc:
                attempt.failed(exc)
                raise

        fn: Callable[..., Any] = run_async
    else:
        def run(*args: Any, **kwargs: Any) -> Any:
            close_old_connections()  # a worker thread's connection may have gone stale since its last job
            attempt = _Attempt(task, alias, sender, args, kwargs)
            try:
                value = task.call(*attempt.context, *args, **kwargs)
                return attempt.succeeded(value)
            except BaseException as exc:
                attempt.failed(exc)
                raise
            finally:
                close_old_connections()

        fn = run
    fn.__name__ = task.func.__name__
    fn.__qualname__ = task.func.__qualname__
    fn.__module__ = task.func.__module__
    fn.__signature__ = call_signature(task.func, task.takes_context)  # type: ignore[attr-defined]
    return fn


def call_signature(func: Callable[..., Any], takes_context: bool) -> inspect.Signature:
    """What a caller passes: the function's parameters without the context, annotations dropped
    (taskq checks the arguments' shape; Django's own rule is that they are JSON)."""
    params = list(inspect.signature(func).parameters.values())[1 if takes_context else 0:]
    return inspect.Signature([p.replace(annotation=inspect.Parameter.empty) for p in params])


class _Attempt:
    """One run of a Django task in a worker: its TaskResult as the task and the signals see it."""

    def __init__(self, task: Any, alias: str, sender: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        job = current_job()
        message = running.get()
        now = timezone.now()
        enqueued = None if message is None else dt.datetime.fromtimestamp(message.enqueued_at, dt.UTC)
        self.sender = sender
        self.args, self.kwargs = list(args), dict(kwargs)
        self.last = job.attempt >= job.max_attempts
        self.result = TaskResult(
            task=task, id=job.id, status=TaskResultStatus.RUNNING, enqueued_at=enqueued, started_at=now,
            finished_at=None, last_attempted_at=now, args=self.args, kwargs=self.kwargs, backend=alias,
            errors=[], worker_ids=[UNKNOWN_WORKER] * job.attempt)
        self.context: tuple[Any, ...] = (TaskContext(task_result=self.result),) if task.takes_context else ()
        task_started.send(sender=sender, task_result=self.result)

    def succeeded(self, value: Any) -> dict[str, Any]:
        value = normalize_json(value)  # as Django's backends do: a value JSON cannot hold fails the attempt
        object.__setattr__(self.result, "_return_value", value)
        self._finished(TaskResultStatus.SUCCESSFUL)
        return envelope(value, self.args, self.kwargs)

    def failed(self, exc: BaseException) -> None:
        """Django hears of a failure once taskq will not try again (a retry is not the end)."""
        if not self.last:
            return
        path = f"{type(exc).__module__}.{type(exc).__qualname__}"
        self.result.errors.append(TaskError(exception_class_path=path, traceback=traceback_text(exc)))
        self._finished(TaskResultStatus.FAILED)

    def _finished(self, status: Any) -> None:
        object.__setattr__(self.result, "status", status)
        object.__setattr__(self.result, "finished_at", timezone.now())
        task_finished.send(sender=self.sender, task_result=self.result)
