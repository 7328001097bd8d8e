"""Every exception taskq raises, in one tree.

    TaskqError                      base of everything below
    ├── ConfigError                 bad task options, bad URL, bad APP path
    ├── BrokerError                 Redis said no
    ├── OutboxError                 the outbox's database failed (taskq relay, taskq outbox)
    │   ├── BrokerUnavailable       cannot reach Redis at URL
    │   ├── BrokerAuthError         Redis refused the credentials (wrong password, ACL)
    │   └── BrokerOutOfMemory       Redis is at maxmemory; nothing was written
    ├── EnqueueError                a call cannot become a message; nothing was enqueued
    │   ├── SerializationError      an argument msgpack cannot encode
    │   └── MessageTooLarge         the packed message is over the size limit
    ├── MessageInvalid              bytes from Redis that are not a taskq message
    ├── TaskNotFound                no registered task by that name
    ├── JobNotFound                 no record of that job id (never enqueued, or expired)
    ├── TaskFailed                  job.result(): the job ended dead (error text attached)
    ├── ResultTimeout               job.result(timeout): no result in time
    ├── JobCancelled                job.result(): the job was cancelled
    └── TimeLimitExceeded           a run took longer than its task's timeout

Control flow raised by task code (not errors of taskq itself):

    Retry(delay=None)               retry now-ish; counts as an attempt
    Reject(reason)                  never retry; straight to the dead-letter list
"""

from __future__ import annotations


class TaskqError(Exception):
    """Base class of every taskq error."""


class ConfigError(TaskqError):
    """A configuration mistake: bad option, URL or APP path."""


class BrokerError(TaskqError):
    """Redis refused or failed a command."""


class BrokerUnavailable(BrokerError):
    """Redis cannot be reached."""


class BrokerAuthError(BrokerError):
    """Redis refused the credentials: a wrong password, or an ACL user without the permission."""


class BrokerOutOfMemory(BrokerError):
    """Redis is at maxmemory (noeviction); the command wrote nothing."""


class OutboxError(TaskqError):
    """The outbox's database (taskq relay, taskq outbox) refused or failed a statement."""


class EnqueueError(TaskqError):
    """A call could not be turned into a message; nothing was enqueued."""


class QueueFull(EnqueueError):
    """The queue holds its `max_ready` ready jobs (app.queue(max_ready=)); nothing was enqueued."""


class SerializationError(EnqueueError):
    """An argument cannot be encoded with msgpack."""


class MessageTooLarge(EnqueueError):
    """The packed message is larger than the configured limit."""


class MessageInvalid(TaskqError):
    """Bytes that do not decode to a valid taskq message."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        #: short machine-readable reason: decode_error, bad_version, bad_field, too_large
        self.reason = reason


class TaskNotFound(TaskqError):
    """No task is registered under that name."""


class JobNotFound(TaskqError):
    """No record of that job: never enqueued, or its result has expired."""


class TaskFailed(TaskqError):
    """The job reached the dead-letter list; carries the error text, never a class."""

    def __init__(self, job_id: str, reason: str, error: str | None) -> None:
        super().__init__(f"job {job_id} failed: {reason}")
        self.job_id = job_id
        self.reason = reason
        #: "Type: message" plus traceback text of the last failure, if any
        self.error = error


class ResultTimeout(TaskqError):
    """No result arrived within the timeout."""


class JobCancelled(TaskqError):
    """The job was cancelled before it produced a result."""


class TimeLimitExceeded(TaskqError):
    """A run took longer than its task's `timeout`; the attempt counts as failed."""


class Retry(Exception):
    """Raise inside a task to retry it; counts as an attempt.

    Args:
        delay: seconds before the retry; None uses the task's backoff.
    """

    def __init__(self, delay: float | None = None) -> None:
        super().__init__(f"retry requested (delay={delay})")
        self.delay = delay


class RateLimited(Exception):
    """Raise inside a task to give its job back for `retry_after` seconds without spending an
    attempt (an API answered 429): the job runs again then, its attempt count unchanged.

    Args:
        retry_after: seconds before the job may run again (>= 0).
        partition: the whole partition of the job backs off as long (no job of it starts before
            then, on any worker) and an adaptive partition limit is cut: the partner is saturated,
            not just this call (the job must have a partition).
    """

    def __init__(self, retry_after: float, *, partition: bool = False) -> None:
        if not isinstance(retry_after, (int, float)) or isinstance(retry_after, bool) or retry_after < 0:
            raise ValueError(f"retry_after must be >= 0 seconds, got {retry_after!r}")
        super().__init__(f"rate limited (retry after {retry_after}s{', the whole partition' if partition else ''})")
        self.retry_after = float(retry_after)
        self.partition = bool(partition)


class Reject(Exception):
    """Raise inside a task to send the job straight to the dead-letter list."""

    def __init__(self, reason: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason


class Aborted(Exception):
    """Raised by `current_job().check_abort()` once `job.abort()` was asked for the running job;
    let it propagate: the job then ends cancelled (never retried), its reason saying who aborted
    it. An async task is cancelled instead (asyncio.CancelledError)."""
