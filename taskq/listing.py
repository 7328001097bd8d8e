"""Read model of the dashboard (and `taskq job --state`): a queue's jobs by state, a page at a
time, and jobs finished per minute from the event streams. Typed rows from broker records, like
views.py, which this extends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from taskq.errors import TaskqError
from taskq.info import JobInfo
from taskq.views import Source, check_queue, stamp

#: the states a queue's jobs are listed by
STATES = ("ready", "scheduled", "running", "dead")
#: kinds of event counted as a job finishing well, or failing (a failed attempt counts too)
GOOD, BAD = frozenset({"succeeded"}), frozenset({"dead", "retrying"})


def jobs(app: Source, queue: str, state: str, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
    """One page of a known queue's jobs in `state` (see STATES): id, task, status, attempt,
    enqueued and finished times, reason."""
    check_queue(app, queue)
    if state not in STATES:
        raise TaskqError(f"unknown state {state!r} (one of: {', '.join(STATES)})")
    ids = app.broker.job_ids(queue, state, offset, limit)
    rows = []
    for job_id, record in zip(ids, app.broker.jobs(queue, ids), strict=True):
        if record is None:
            continue
        info = JobInfo.of(record, app.max_message_bytes)  # task and attempt, with or without the message
        task, attempt = info.task, info.attempt
        status = record.status.value if record.status is not None else record.raw_status
        rows.append({"id": job_id, "queue": queue, "task": task, "status": status, "attempt": attempt,
                     "enqueued": stamp(record.enqueued_ms, seconds=True),
                     "finished": stamp(record.finished_ms, seconds=True), "reason": record.reason})
    return rows


def per_minute(app: Source, queues: Sequence[str], minutes: int = 60) -> dict[str, Any]:
    """Jobs that succeeded and attempts that failed in each of the last `minutes` minutes, from
    what the queues' event streams still hold (each keeps about its `events=` cap)."""
    now = app.broker.time_ms()
    start = (now // 60_000 - minutes + 1) * 60_000
    good, bad = [0] * minutes, [0] * minutes
    for q in queues:
        for event in app.broker.events_between(q, start):
            slot = (event.at_ms - start) // 60_000
            if 0 <= slot < minutes:
                if event.kind in GOOD:
                    good[slot] += 1
                elif event.kind in BAD:
                    bad[slot] += 1
    return {"start": stamp(start, seconds=True), "succeeded": good, "failed": bad}
