"""A taskq job record as Django's TaskResult: status, times, attempts, errors, arguments, value."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from taskq.broker.base import JobRecord, Status
from taskq.contrib.django.compat import TaskError, TaskResult, TaskResultStatus
from taskq.contrib.django.mapping import attempts_made, error_of, status_name, unwrap
from taskq.contrib.django.runner import UNKNOWN_WORKER
from taskq.errors import TaskqError
from taskq.info import JobInfo
from taskq.message import PACKED_NONE, unpack, unpack_value


def result_of(record: JobRecord, task: Any, alias: str) -> Any:
    """The TaskResult of the Django task `task` that a job record tells of."""
    info = JobInfo.of(record)
    status = info.status
    value, args, kwargs = _call_of(record)
    attempts = attempts_made(status, info.attempt, info.started_at is not None)
    worker_ids = [UNKNOWN_WORKER] * attempts
    if status is Status.RUNNING and info.worker and worker_ids:
        worker_ids[-1] = info.worker  # taskq keeps the worker of the lease held now, not earlier ones
    error = error_of(status, info.error, info.reason)
    result = TaskResult(
        task=task, id=record.id, status=django_status(status), enqueued_at=_local(info.enqueued_at),
        started_at=_local(info.started_at), finished_at=_local(info.finished_at),
        last_attempted_at=_local(info.started_at), args=args, kwargs=kwargs, backend=alias,
        errors=[] if error is None else [TaskError(exception_class_path=error[0], traceback=error[1])],
        worker_ids=worker_ids)
    if status is Status.SUCCEEDED:
        object.__setattr__(result, "_return_value", value)  # as Django's own backends set it
    return result


def django_status(status: Status | None) -> Any:
    """Django's TaskResultStatus of a taskq status (FAILED for a cancelled job where Django has
    no CANCELLED)."""
    return getattr(TaskResultStatus, status_name(status), TaskResultStatus.FAILED)


def _call_of(record: JobRecord) -> tuple[Any, list[Any], dict[str, Any]]:
    """(return value, args, kwargs): a succeeded job's from its result (the envelope), any
    other's from its message."""
    if record.status is Status.SUCCEEDED:
        found = unwrap(unpack_value(record.result or PACKED_NONE))
        return found if found is not None else (None, [], {})
    try:
        message = unpack(record.message, len(record.message))
    except TaskqError:
        return None, [], {}
    return None, list(message.args), dict(message.kwargs)


def _local(instant: dt.datetime | None) -> dt.datetime | None:
    """An aware UTC time as Django's settings want it: aware with USE_TZ, else naive local time."""
    if instant is None or settings.USE_TZ:
        return instant
    return timezone.make_naive(instant)  # type: ignore[no-any-return]
