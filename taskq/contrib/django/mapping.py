"""How Django's task fields map onto taskq's, and back: priority, status, attempts, errors, and
what a Django task's job returns. Pure: no Django, no Redis.

- priority: Django's -100..100 onto taskq's 0..9, in order, 20 steps a level (-100..-81 is 0,
  -20..-1 is 4, Django's default 0..19 is 5, 80..100 is 9).
- status: queued, scheduled, reserved, failed (a retry waits) and waiting are READY; running is
  RUNNING; succeeded is SUCCESSFUL; dead is FAILED; cancelled is CANCELLED where Django has it,
  else FAILED.
- result: a Django task's job returns an envelope holding the return value and the call's
  arguments, because a succeeded job's record keeps its result but not its message.
"""

from __future__ import annotations

import re
from typing import Any

from taskq.broker.base import Status
from taskq.message import MAX_PRIORITY

#: Django's lowest priority, and how many of its steps make one taskq level
DJANGO_MIN_PRIORITY = -100
PRIORITY_STEP = 20

#: Django's status name of each taskq status
STATUS_NAMES = {
    Status.QUEUED: "READY", Status.SCHEDULED: "READY", Status.RESERVED: "READY", Status.FAILED: "READY",
    Status.WAITING: "READY", Status.RUNNING: "RUNNING", Status.SUCCEEDED: "SUCCESSFUL", Status.DEAD: "FAILED",
    Status.CANCELLED: "CANCELLED",
}
#: statuses in which the job's message names the attempt to come, not one that ran
_WAITING = frozenset({Status.QUEUED, Status.SCHEDULED, Status.RESERVED, Status.FAILED, Status.WAITING})

#: the key that marks a Django task's return envelope (and its version)
ENVELOPE = "taskq.contrib.django"

#: the class path given for an error whose text names no exception
UNKNOWN_EXCEPTION = "builtins.Exception"
_TRACEBACK_HEAD = "Traceback (most recent call last):"
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?::|$)")


def taskq_priority(priority: int) -> int:
    """Django's priority (-100..100, higher first) as taskq's (0..9, higher first), in order."""
    return min(MAX_PRIORITY, max(0, (priority - DJANGO_MIN_PRIORITY) // PRIORITY_STEP))


def status_name(status: Status | None) -> str:
    """Django's name for a taskq status; a status taskq did not write reads READY."""
    return "READY" if status is None else STATUS_NAMES[status]


def attempts_made(status: Status | None, attempt: int | None, started: bool) -> int:
    """How many attempts have run (or are running): Django counts them by its `worker_ids`."""
    if not attempt:
        return 0
    if status is None or status in _WAITING:
        return attempt - 1
    if status is Status.CANCELLED and not started:
        return attempt - 1
    return attempt


def exception_class_path(traceback_text: str) -> str:
    """The class path (`module.Qualname`) of the exception a stored traceback ends with, read
    from its text: nothing is imported. Python writes a builtin's name bare (`ValueError`),
    which is `builtins.ValueError` here, as Django writes it."""
    lines = traceback_text.splitlines()
    start = max((i for i, line in enumerate(lines) if line.startswith(_TRACEBACK_HEAD)), default=-1) + 1
    for line in lines[start:]:
        if line[:1].isspace():  # a frame, its source line or its carets
            continue
        found = _EXCEPTION_LINE.match(line)
        if found is None:
            break
        name = found.group(1)
        return name if "." in name else f"builtins.{name}"
    return UNKNOWN_EXCEPTION


def error_of(status: Status | None, error: str | None, reason: str | None) -> tuple[str, str] | None:
    """(class path, traceback text) of a job's last failure, or None if it has none: a dead job
    without a traceback (expired, lost) reads as taskq.errors.TaskFailed with its reason, a
    cancelled one as taskq.errors.JobCancelled."""
    if error:
        return exception_class_path(error), error
    if status is Status.DEAD:
        return "taskq.errors.TaskFailed", reason or "dead"
    if status is Status.CANCELLED:
        return "taskq.errors.JobCancelled", reason or "cancelled"
    return None


def envelope(value: Any, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """What a Django task's job returns: its value and its arguments (so a succeeded job, whose
    record drops the message, still has them)."""
    return {ENVELOPE: 1, "value": value, "args": args, "kwargs": kwargs}


def unwrap(result: Any) -> tuple[Any, list[Any], dict[str, Any]] | None:
    """(value, args, kwargs) of an envelope, or None if `result` is not one."""
    if not isinstance(result, dict) or result.get(ENVELOPE) != 1:
        return None
    args, kwargs = result.get("args"), result.get("kwargs")
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        return None
    return result.get("value"), args, kwargs
