"""current_job(): what a running task can learn about its own job."""

from __future__ import annotations

import dataclasses
from contextvars import ContextVar

from taskq.errors import TaskqError
from taskq.message import Message

#: the message of the job running in this thread or asyncio task (set by the worker)
running: ContextVar[Message | None] = ContextVar("taskq_running", default=None)


@dataclasses.dataclass(frozen=True, slots=True)
class JobContext:
    """The job a task function is running as."""

    id: str
    task: str
    queue: str
    #: 1 for the first run, incremented by each retry
    attempt: int
    max_attempts: int


def current_job() -> JobContext:
    """The job being run; raises TaskqError outside a task run by a worker (e.g. a plain call)."""
    message = running.get()
    if message is None:
        raise TaskqError("current_job() is only available inside a task run by a worker")
    return JobContext(message.id, message.task, message.queue, message.attempt, message.max_attempts)
