"""Job[R]: a handle on one enqueued call (id + queue); all I/O goes through the broker."""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from taskq.broker.base import CANCELLABLE, TERMINAL, Handles, JobRecord, JobState, Move, Status
from taskq.errors import ConfigError, JobCancelled, JobNotFound, ResultTimeout, TaskFailed
from taskq.events import EventKind, JobEvent, Sink
from taskq.info import JobInfo, LogLine
from taskq.message import PACKED_NONE, unpack_value
from taskq.options import check_priority, unix_ms

R = TypeVar("R")

__all__ = ["TERMINAL", "Job", "Status"]


class Job(Generic[R]):
    """A handle on an enqueued job. Cheap to create; holds no state but its id and queue."""

    def __init__(self, broker: Handles, queue: str, job_id: str, hooks: Sink | None = None,
                 rebuild: Callable[[Any], R] | None = None) -> None:
        self.id = job_id
        self.queue = queue
        self._broker = broker
        #: the app's hooks: a job this handle cancels gives its "cancelled" event here
        self._hooks = hooks
        #: the result's model or dataclass from its stored plain values (taskq/models.py), or None
        self._rebuild = rebuild

    def __repr__(self) -> str:
        return f"<Job {self.id} queue={self.queue!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and (other.id, other.queue) == (self.id, self.queue)

    def __hash__(self) -> int:
        return hash((self.id, self.queue))

    def _missing(self) -> JobNotFound:
        return JobNotFound(f"no job {self.id} in queue {self.queue!r} "
                           "(never enqueued, expired, or dropped by its queue's keep_succeeded cap)")

    def status(self) -> Status:
        """The job's current status; raises JobNotFound if there is no record."""
        state = self._broker.state(self.queue, self.id)
        if state is None:
            raise self._missing()
        return state.status

    def info(self) -> JobInfo:
        """Everything known about the job now, from one round trip (taskq.JobInfo); raises
        JobNotFound if there is no record."""
        record = self._broker.job(self.queue, self.id)
        if record is None:
            raise self._missing()
        return JobInfo.of(record)

    def result(self, timeout: float | None = None) -> R:
        """Wait for the job to end and return its value.

        Args:
            timeout: seconds to wait; None waits for ever.

        Raises:
            TaskFailed: the job ended in the dead-letter list (error text attached).
            JobCancelled: the job was cancelled.
            ResultTimeout: no outcome within `timeout`.
            JobNotFound: no record of the job.
            MessageInvalid: the result does not fit the task's return type (a model changed).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            done, value, left = self._outcome(self._broker.state(self.queue, self.id, watch=True), deadline, timeout)
            if done:
                return cast(R, value)
            # blocks in Redis until the final script pushes the wake-up token
            self._broker.wait_done(self.queue, self.id, left)

    async def result_async(self, timeout: float | None = None) -> R:
        """result() for code on an event loop: waits without blocking the loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        aio = self._broker.aio
        while True:
            done, value, left = self._outcome(await aio.state(self.queue, self.id, watch=True), deadline, timeout)
            if done:
                return cast(R, value)
            await aio.wait_done(self.queue, self.id, left)

    def _outcome(self, state: JobState | None, deadline: float | None,
                 timeout: float | None) -> tuple[bool, Any, float]:
        """(True, value) once the job has succeeded, else (False, None, seconds to wait next);
        raises for a job that ended otherwise, is missing, or ran out of `timeout`."""
        if state is None:
            raise self._missing()
        if state.status is Status.SUCCEEDED:
            value = unpack_value(state.result or PACKED_NONE)
            return True, value if self._rebuild is None else self._rebuild(value), 0.0
        if state.status is Status.DEAD:
            raise TaskFailed(self.id, state.reason or "dead", state.error)
        if state.status is Status.CANCELLED:
            raise JobCancelled(f"job {self.id} was cancelled" + (f": {state.reason}" if state.reason else ""))
        left = 5.0 if deadline is None else deadline - time.monotonic()
        if left <= 0:
            raise ResultTimeout(f"job {self.id} has no result after {timeout}s (status {state.status})")
        return False, None, min(left, 5.0)

    def abort(self, by: str | None = None) -> bool:
        """Stop the job, running or not. A job not started yet is cancelled (as cancel()); a
        running one is stopped by its worker, which is told at once (at the latest with its next
        lease renewal, within lease/3 seconds): an async task is cancelled, a sync one sees
        current_job().abort_requested. It ends cancelled, never retried, with info().reason
        'aborted: <by>'. False if the job had already ended (or does not exist)."""
        who = by or f"job.abort() on {socket.gethostname()}:{os.getpid()}"
        before = self._broker.cancel(self.queue, self.id, abort=who)
        if self._wants_cancelled(before):
            self._cancelled(self._broker.job(self.queue, self.id))
        return before is not None and before not in TERMINAL

    async def status_async(self) -> Status:
        """status() for code on an event loop."""
        state = await self._broker.aio.state(self.queue, self.id)
        if state is None:
            raise self._missing()
        return state.status

    async def info_async(self) -> JobInfo:
        """info() for code on an event loop."""
        record = await self._broker.aio.job(self.queue, self.id)
        if record is None:
            raise self._missing()
        return JobInfo.of(record)

    async def cancel_async(self) -> bool:
        """cancel() for code on an event loop."""
        before = await self._broker.aio.cancel(self.queue, self.id)
        if self._wants_cancelled(before):
            self._cancelled(await self._broker.aio.job(self.queue, self.id))
        return before in CANCELLABLE

    def cancel(self) -> bool:
        """Cancel the job. True if it will never start again: it was queued, scheduled, waiting
        for a retry, or reserved by a worker but not started. A running job finishes its current
        attempt but is never retried (returns False)."""
        before = self._broker.cancel(self.queue, self.id)
        if self._wants_cancelled(before):
            self._cancelled(self._broker.job(self.queue, self.id))
        return before in CANCELLABLE

    def reschedule(self, *, delay: float | dt.timedelta | None = None, at: dt.datetime | None = None) -> bool:
        """Give a job that has not started a new due time: `delay` seconds (or a timedelta) from
        now, or `at` a datetime (naive: local time). True if it moved: it was queued, scheduled, or
        reserved (prefetched by a worker, which then never starts it), or waiting for its retry
        (its next attempt moves); a deadline given in seconds (expires=) counts from the new due
        time, and a job with an ordering key enters its key's line when it falls due. False,
        changing nothing, for a running or ended job, or no job."""
        return self._broker.move(self.queue, self.id, _due(delay, at))[1]

    def run_now(self) -> bool:
        """Run a scheduled job, or a job waiting for its retry, now: it enters its queue (behind its
        ordering key, if it has one) as reschedule(delay=0) does. True if it moved; False, changing
        nothing, for any other job (a queued one keeps its place in line), or no job."""
        return self._broker.move(self.queue, self.id, Move("now", 0))[1]

    async def run_now_async(self) -> bool:
        """run_now() for code on an event loop."""
        return (await self._broker.aio.move(self.queue, self.id, Move("now", 0)))[1]

    def logs(self) -> list[LogLine]:
        """The lines the job logged (current_job().log() and its stdlib records at INFO and
        above), oldest first: its newest 100, kept as long as its record. Lines a running job
        wrote reach Redis in batches (its progress reports, the worker's lease renewals every
        lease/3 s, its end): the newest may not be here yet."""
        return [LogLine.of(e) for e in self._broker.job_logs(self.queue, self.id)]

    async def logs_async(self) -> list[LogLine]:
        """logs() for code on an event loop."""
        return [LogLine.of(e) for e in await self._broker.aio.job_logs(self.queue, self.id)]

    def set_priority(self, priority: int) -> bool:
        """Give a job that has not started a new priority (0-9, higher first): it goes to the back
        of its new priority's line (a reserved one is taken back from its worker first). True if
        it changed; False, changing nothing, for a running, retrying or ended job, or no job."""
        check_priority(priority)
        return self._broker.move(self.queue, self.id, Move("priority", priority))[1]

    async def reschedule_async(self, *, delay: float | dt.timedelta | None = None,
                               at: dt.datetime | None = None) -> bool:
        """reschedule() for code on an event loop."""
        return (await self._broker.aio.move(self.queue, self.id, _due(delay, at)))[1]

    async def set_priority_async(self, priority: int) -> bool:
        """set_priority() for code on an event loop."""
        check_priority(priority)
        return (await self._broker.aio.move(self.queue, self.id, Move("priority", priority)))[1]

    def _wants_cancelled(self, before: Status | None) -> bool:
        """This call ended the job (it had not started), and a "cancelled" hook listens. A
        running job's end is its worker's event."""
        return before in CANCELLABLE and self._hooks is not None and self._hooks.wants(EventKind.CANCELLED)

    def _cancelled(self, record: JobRecord | None) -> None:
        assert self._hooks is not None
        info = None if record is None else JobInfo.of(record)
        task, attempt, reason = ("?", 1, None) if info is None else (info.task or "?", info.attempt or 1, info.reason)
        self._hooks.dispatch(JobEvent(EventKind.CANCELLED, self.id, task, self.queue, attempt, reason=reason))


def _due(delay: float | dt.timedelta | None, at: dt.datetime | None) -> Move:
    """reschedule()'s new due time, checked: delay= (seconds >= 0 or a timedelta) or at= (a datetime)."""
    if (delay is None) == (at is None):
        raise ConfigError("reschedule() takes delay= or at=, one of them")
    if at is not None:
        if not isinstance(at, dt.datetime):
            raise ConfigError(f"at must be a datetime, got {at!r}")
        return Move("at", unix_ms(at))
    seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else delay
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise ConfigError(f"delay must be >= 0 seconds or a timedelta, got {delay!r}")
    return Move("in", int(seconds * 1000))
