"""Run one message against its task and decide what happens next. No Redis, no threads."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import random
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from taskq.backoff import Backoff
from taskq.context import JobContext, job_context, running
from taskq.errors import Aborted, RateLimited, Reject, Retry, SerializationError, TimeLimitExceeded
from taskq.message import Message, pack_value
from taskq.models import Mismatch
from taskq.task import TaskBase


@dataclasses.dataclass(slots=True)  # not frozen: a frozen __init__ costs per job run
class Succeeded:
    """The function returned; `result` is the packed return value."""

    result: bytes
    duration: float


@dataclasses.dataclass(frozen=True, slots=True)
class RetryLater:
    """The attempt failed and attempts remain: run again after `delay` seconds."""

    delay: float
    error: str
    summary: str
    duration: float
    #: False for taskq.RateLimited: the next run keeps this run's attempt number
    spend: bool = True
    #: whether the log line shows `error` (see failed())
    show_traceback: bool = True
    #: what the run says of its partition's partner (PartitionSignal)
    signal: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Dead:
    """The job will never succeed: dead-letter it with a reason."""

    reason: str
    error: str
    duration: float = 0.0
    #: whether the log line shows `error` (see failed())
    show_traceback: bool = True
    #: what the run says of its partition's partner (PartitionSignal)
    signal: str = ""


def partition_signal(exc: BaseException) -> str:
    """What a failure says of the job's partition (settle.lua): "b<ms>" back off that long and
    cut an adaptive limit (RateLimited(partition=True)), "s" cut it (a time limit), "" nothing."""
    if isinstance(exc, RateLimited) and exc.partition:
        return f"b{int(exc.retry_after * 1000)}"
    return "s" if isinstance(exc, TimeLimitExceeded) else ""


Outcome = Succeeded | RetryLater | Dead
#: app.middleware: mw(job, call_next) wraps one attempt (taskq/hooks.py)
Middleware = Callable[[JobContext, Callable[[], Any]], Any]
#: taskq's own files a job's exception leaves through (this runner, the middleware chain, the pool):
#: their frames are cut from the traceback that is stored and logged, so the user sees their own
_RUNNER_FILES = frozenset(os.path.join(os.path.dirname(__file__), *name) for name in (
    ("execute.py",), ("hooks.py",), ("worker", "pool.py")))


#: what a task raises on purpose to tell taskq what to do: no traceback in the log for these
_SIGNALS = (Retry, Reject, RateLimited, Aborted)


def traceback_text(exc: BaseException) -> str:
    """`traceback.format_exception(exc)` without taskq's runner frames (chained exceptions too)."""
    top = traceback.TracebackException.from_exception(exc)
    todo, seen = [top], set()
    while todo:
        te = todo.pop()
        if id(te) in seen:
            continue
        seen.add(id(te))
        te.stack = traceback.StackSummary.from_list([f for f in te.stack if f.filename not in _RUNNER_FILES])
        todo += [t for t in (te.__cause__, te.__context__, *(te.exceptions or ())) if t is not None]
    return "".join(top.format())


def failed(task: TaskBase[Any, Any], message: Message, exc: BaseException, duration: float,
           rng: Callable[[], float] = random.random) -> Outcome:
    """What a raised exception means for the job: retry later, or dead. Its traceback is stored;
    it is logged too unless the task raised one of taskq's signals on purpose (Retry, Reject,
    RateLimited, Aborted) or it was never raised (a time limit taskq enforced)."""
    error = traceback_text(exc)
    summary = f"{type(exc).__name__}: {exc}"
    shown = exc.__traceback__ is not None and not isinstance(exc, _SIGNALS)
    if isinstance(exc, Reject):
        return Dead(f"rejected: {exc.reason}", error, duration, shown)
    if isinstance(exc, Aborted):  # abort set the job's cancel flag: settling this retry ends it cancelled
        return RetryLater(0.0, error, summary, duration, False, shown)
    if isinstance(exc, RateLimited):  # not the job's fault: no attempt spent
        return RetryLater(exc.retry_after, error, summary, duration, False, shown, partition_signal(exc))
    signal = partition_signal(exc)
    if not isinstance(exc, Retry) and not task.opts.retries_on(exc):
        return Dead(f"not_retried: {summary} (the task's retry_on/dont_retry_on)", error, duration, shown, signal)
    if message.attempt >= message.max_attempts:
        return Dead(f"retries_exhausted: {summary} (attempt {message.attempt} of {message.max_attempts})",
                    error, duration, shown, signal)
    if isinstance(exc, Retry) and exc.delay is not None:
        delay = max(0.0, exc.delay)
    else:
        backoff = task.opts.backoff if message.backoff is None else Backoff(*message.backoff)
        delay = backoff.delay(message.attempt, rng)
    return RetryLater(delay, error, summary, duration, True, shown, signal)


def returned(task: TaskBase[Any, Any], message: Message, value: Any, duration: float,
             rng: Callable[[], float] = random.random) -> Outcome:
    """What a returned value means: success, or failure if it overran or cannot be stored."""
    if message.timeout is not None and duration > message.timeout:
        # a thread cannot be stopped; the overrun is reported once the function returns
        exc = TimeLimitExceeded(f"time limit exceeded: ran {duration:.3f}s, timeout is {message.timeout}s")
        return failed(task, message, exc, duration, rng)
    types = task.types
    try:
        if types is not None and types.result is not None:  # a model or dataclass: as plain values
            value = types.result.dump(value)
        return Succeeded(pack_value(value), duration)
    except (SerializationError, Mismatch) as exc:
        error = f"the value does not fit the return type: {exc.of('result')}" if isinstance(exc, Mismatch) else exc
        return Dead(f"result_unserializable: {error}", str(error), duration, False)  # no traceback to show


def arguments(task: TaskBase[Any, Any], message: Message) -> tuple[tuple[Any, ...], dict[str, Any]] | Dead:
    """The arguments to call the function with: the message's, with models and dataclasses
    rebuilt from its type hints (taskq/models.py); Dead ("bad_args: ...") if they do not fit,
    e.g. the model changed since the job was enqueued: no attempt would do better."""
    types = task.types
    if types is None:  # the common case: the message's values as they are
        return message.args, message.kwargs
    try:
        return types.load_call(message.args, message.kwargs)
    except Mismatch as exc:
        return Dead(f"bad_args: {exc}", f"bad_args: {exc}", 0.0, False)


def wrap_sync(middleware: Sequence[Middleware], job: JobContext, body: Callable[[], Any]) -> Any:
    """Call `body` inside every middleware, the first registered outermost."""
    def at(i: int) -> Any:
        return body() if i == len(middleware) else middleware[i](job, lambda: at(i + 1))
    return at(0)


async def wrap_async(middleware: Sequence[Middleware], job: JobContext, body: Callable[[], Awaitable[Any]]) -> Any:
    """Await `body` inside every middleware; what a middleware returns is awaited if awaitable."""
    async def at(i: int) -> Any:
        if i == len(middleware):
            return await body()
        result = middleware[i](job, lambda: at(i + 1))
        return await result if inspect.isawaitable(result) else result
    return await at(0)


def run_sync(task: TaskBase[Any, Any], message: Message, middleware: Sequence[Middleware] = ()) -> Outcome:
    """Call a sync task function in the current thread, inside the app's middleware."""
    called = arguments(task, message)
    if isinstance(called, Dead):
        return called
    args, kwargs = called
    token = running.set(message)
    start = time.perf_counter()
    try:
        if middleware:
            value = wrap_sync(middleware, job_context(message), lambda: task.fn(*args, **kwargs))
        else:
            value = task.fn(*args, **kwargs)
    except Exception as exc:
        return failed(task, message, exc, time.perf_counter() - start)
    finally:
        running.reset(token)
    return returned(task, message, value, time.perf_counter() - start)


async def run_async(task: TaskBase[Any, Any], message: Message, middleware: Sequence[Middleware] = ()) -> Outcome:
    """Await an async task function on the current event loop, enforcing its timeout. Only
    taskq's own limit is reported as TimeLimitExceeded; a TimeoutError the task raises itself
    (its own asyncio.timeout or wait_for) is an ordinary failure, with its traceback."""
    called = arguments(task, message)
    if isinstance(called, Dead):
        return called
    args, kwargs = called
    running.set(message)  # this coroutine runs as its own asyncio task: the value stays inside it
    start = time.perf_counter()
    limit: asyncio.Timeout | None = None
    try:
        coro = task.fn(*args, **kwargs) if not middleware else wrap_async(
            middleware, job_context(message), lambda: task.fn(*args, **kwargs))
        if message.timeout is None:
            value = await coro
        else:
            async with asyncio.timeout(message.timeout) as limit:
                value = await coro
    except asyncio.CancelledError:  # job.abort(): the worker cancelled this run
        return failed(task, message, Aborted(f"job {message.id} was aborted"), time.perf_counter() - start)
    except TimeoutError as exc:
        duration = time.perf_counter() - start
        raised: BaseException = exc
        if limit is not None and limit.expired():
            raised = TimeLimitExceeded(f"time limit exceeded: cancelled after {message.timeout}s")
        return failed(task, message, raised, duration)
    except Exception as exc:
        return failed(task, message, exc, time.perf_counter() - start)
    return returned(task, message, value, time.perf_counter() - start)
