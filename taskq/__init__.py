"""taskq: Celery-style distributed tasks on Redis that never lose a job."""

from __future__ import annotations

from taskq.app import TaskQ
from taskq.backoff import Backoff
from taskq.beat import Beat
from taskq.context import JobContext, current_job
from taskq.errors import (
    BrokerError,
    BrokerOutOfMemory,
    BrokerUnavailable,
    ConfigError,
    EnqueueError,
    JobCancelled,
    JobNotFound,
    MessageInvalid,
    MessageTooLarge,
    Reject,
    ResultTimeout,
    Retry,
    SerializationError,
    TaskFailed,
    TaskNotFound,
    TaskqError,
    TimeLimitExceeded,
)
from taskq.job import Job, Status
from taskq.schedule import Schedule
from taskq.task import AsyncTask, Task
from taskq.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AsyncTask", "Backoff", "Beat", "BrokerError", "BrokerOutOfMemory", "BrokerUnavailable",
    "ConfigError", "EnqueueError", "Job", "JobCancelled", "JobContext", "JobNotFound", "MessageInvalid",
    "MessageTooLarge", "Reject", "ResultTimeout", "Retry", "Schedule", "SerializationError", "Status",
    "Task", "TaskFailed", "TaskNotFound", "TaskQ", "TaskqError", "TimeLimitExceeded",
    "Worker", "__version__", "current_job",
]
