"""taskq: Celery-style distributed tasks on Redis that never lose a job."""

from __future__ import annotations

from taskq._version import VERSION
from taskq.app import TaskQ
from taskq.backoff import Backoff
from taskq.beat import Beat
from taskq.context import JobContext, current_job
from taskq.errors import (
    Aborted,
    BrokerAuthError,
    BrokerError,
    BrokerOutOfMemory,
    BrokerUnavailable,
    ConfigError,
    EnqueueError,
    JobCancelled,
    JobNotFound,
    MessageInvalid,
    MessageTooLarge,
    OutboxError,
    QueueFull,
    RateLimited,
    Reject,
    ResultTimeout,
    Retry,
    SerializationError,
    TaskFailed,
    TaskNotFound,
    TaskqError,
    TimeLimitExceeded,
)
from taskq.events import EventKind, JobEvent
from taskq.info import JobInfo, LogLine
from taskq.job import Job, Status
from taskq.limits import Adaptive
from taskq.partitions import Partition, PartitionInfo
from taskq.schedule import Schedule
from taskq.schedules import ScheduleInfo, Schedules
from taskq.stats_views import StatsPoint
from taskq.task import AsyncTask, Signature, Task, TaskCall
from taskq.worker import Worker
from taskq.workflow import Chain, Chord, Group, GroupJob, chain, chord, group

__version__ = VERSION


def __getattr__(name: str) -> object:
    """taskq.otel on first use (it needs the extra taskq-redis[otel])."""
    if name == "otel":
        import importlib

        return importlib.import_module("taskq.otel")
    raise AttributeError(f"module 'taskq' has no attribute {name!r}")

__all__ = [
    "Aborted", "Adaptive", "AsyncTask", "Backoff", "Beat", "BrokerAuthError", "BrokerError", "BrokerOutOfMemory",
    "BrokerUnavailable", "Chain", "Chord", "ConfigError", "EnqueueError", "EventKind", "Group", "GroupJob", "Job",
    "JobCancelled", "JobContext", "JobEvent", "JobInfo", "JobNotFound", "LogLine", "MessageInvalid", "MessageTooLarge",
    "OutboxError", "Partition", "PartitionInfo", "QueueFull", "RateLimited", "Reject", "ResultTimeout", "Retry",
    "Schedule", "ScheduleInfo", "Schedules", "SerializationError", "Signature", "StatsPoint", "Status", "Task",
    "TaskCall", "TaskFailed", "TaskNotFound", "TaskQ", "TaskqError", "TimeLimitExceeded", "Worker", "chain", "chord",
    "current_job", "group",
    "__version__",
]
