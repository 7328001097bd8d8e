"""current_job(): what a running task can learn about its own job, and tell about it."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from contextvars import ContextVar

from taskq.errors import Aborted, TaskqError
from taskq.message import Message

#: the message of the job running in this thread or asyncio task (set by the worker)
running: ContextVar[Message | None] = ContextVar("taskq_running", default=None)
#: how the worker running this thread stores progress: (message, fraction, text) -> None
reporter: ContextVar[Callable[[Message, float, str], None] | None] = ContextVar("taskq_reporter", default=None)
#: whether an abort was asked for the job of a message (set by the worker, like the reporter)
aborts: ContextVar[Callable[[Message], bool] | None] = ContextVar("taskq_aborts", default=None)
#: where the worker keeps a running job's log lines: (message, level, text) -> None; no I/O
log_sink: ContextVar[Callable[[Message, int, str], None] | None] = ContextVar("taskq_log_sink", default=None)

#: logging.INFO, the level of current_job().log() lines (not imported: context sits below log)
INFO = 20


@dataclasses.dataclass(frozen=True, slots=True)
class JobContext:
    """The job a task function is running as."""

    id: str
    task: str
    queue: str
    #: 1 for the first run, incremented by each retry
    attempt: int
    max_attempts: int
    _message: Message = dataclasses.field(repr=False, compare=False)

    def progress(self, fraction: float, text: str = "") -> None:
        """Report how far this run got (0.0 to 1.0, with an optional note), for `taskq job` and
        `taskq status`. Best effort: never raises because Redis is unreachable; a new attempt
        starts without progress."""
        if not isinstance(fraction, (int, float)) or math.isnan(fraction) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"progress must be a number from 0.0 to 1.0, not {fraction!r}")
        report = reporter.get()
        if report is not None:
            report(self._message, float(fraction), str(text)[:200])

    def log(self, text: str) -> None:
        """Keep a line with the job (`job.logs()`, `taskq job ID --logs`, the dashboard): its
        newest 100 lines are kept, each cut at 500 characters, for as long as its record. Sent in
        batches by the worker (never a round trip per line); a no-op outside a worker."""
        sink = log_sink.get()
        if sink is not None:
            sink(self._message, INFO, str(text))

    @property
    def trace(self) -> dict[str, str] | None:
        """The trace context its producer sent with the job (taskq.otel), or None."""
        return self._message.trace

    @property
    def abort_requested(self) -> bool:
        """Whether `job.abort()` was asked for this job (the worker learns it when it renews the
        lease, every lease/3 seconds). A sync task checks it between steps and stops."""
        asked = aborts.get()
        return asked is not None and asked(self._message)

    def check_abort(self) -> None:
        """Raise taskq.Aborted if an abort was asked for this job."""
        if self.abort_requested:
            raise Aborted(f"job {self.id} was aborted")


def job_context(message: Message) -> JobContext:
    """The JobContext of a message being run."""
    return JobContext(message.id, message.task, message.queue, message.attempt, message.max_attempts, message)


def current_job() -> JobContext:
    """The job being run; raises TaskqError outside a task run by a worker (e.g. a plain call)."""
    message = running.get()
    if message is None:
        raise TaskqError("current_job() is only available inside a task run by a worker")
    return job_context(message)
