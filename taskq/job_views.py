"""The read model of ended jobs and of a job's log: what `taskq job --state succeeded|cancelled`
(search by task and by the arguments kept, app.queue(keep_args=)), `taskq job ID --logs` and the
dashboard's job page show. Typed from broker records, like views.py."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.broker.base import JobRecord
from taskq.errors import TaskqError
from taskq.views import Source, message_of, queue_jobs, stamp

#: the states listed from the queues' capped lists of ended jobs (lua/lib/finish.lua)
ENDED = ("succeeded", "cancelled")
#: ids read per broker call while searching
PAGE = 200
#: most ids looked at per queue for one search (the lists hold up to keep_succeeded)
SEARCHED = 20_000


def ended_jobs(app: Source, queues: Sequence[str], state: str, *, task: str | None = None,
               grep: str | None = None, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    """One page of the queues' succeeded or cancelled jobs, newest first (as queue_jobs rows):
    with `task`, only that task's; with `grep`, only those whose task name or kept arguments
    (their repr) contain the text, case-insensitive. Searching looks at each queue's newest
    SEARCHED ids."""
    if state not in ENDED:
        raise TaskqError(f"unknown state {state!r} for ended jobs (one of: {', '.join(ENDED)})")
    if task is None and grep is None and len(queues) == 1:
        return queue_jobs(app, queues[0], state, offset, limit)
    needle = (grep or "").lower()
    rows: list[dict[str, Any]] = []
    for q in queues:
        for start in range(0, SEARCHED, PAGE):
            ids = app.broker.job_ids(q, state, start, PAGE)
            for record in app.broker.jobs(q, ids):
                if record is not None and _matches(app, record, task, needle):
                    rows.append(_row(app, record))
            if len(ids) < PAGE or (len(queues) == 1 and len(rows) >= offset + limit):
                break
    rows.sort(key=lambda r: r["finished"] or "", reverse=True)
    return rows[offset:offset + limit]


def _matches(app: Source, record: JobRecord, task: str | None, needle: str) -> bool:
    if task is not None and record.task != task and _task_of(app, record) != task:
        return False
    if not needle:
        return True
    if needle in (record.task or _task_of(app, record) or "").lower():
        return True
    return needle in _args_text(app, record).lower()


def _task_of(app: Source, record: JobRecord) -> str | None:
    try:
        return message_of(app, record).task if record.message else None
    except TaskqError:
        return None


def _args_text(app: Source, record: JobRecord) -> str:
    """The kept arguments as text ('' when the record keeps no message)."""
    if not record.message:
        return ""
    try:
        message = message_of(app, record)
    except TaskqError:
        return ""
    return f"{message.args!r} {message.kwargs!r}"


def _row(app: Source, record: JobRecord) -> dict[str, Any]:
    task = record.task or _task_of(app, record)
    status = record.status.value if record.status is not None else record.raw_status
    return {"id": record.id, "queue": record.queue, "task": task, "status": status, "attempt": record.attempt,
            "enqueued": stamp(record.enqueued_ms, seconds=True), "finished": stamp(record.finished_ms, seconds=True),
            "reason": record.reason, "due": None, "args": _args_text(app, record) or None}


def log_lines(app: Source, record: JobRecord) -> list[dict[str, Any]]:
    """A job's kept log lines, oldest first: at (ISO 8601 UTC, ms), level, text."""
    return [{"at": stamp(e.at_ms), "level": e.level, "text": e.text}
            for e in app.broker.job_logs(record.queue, record.id)]
