"""JobInfo: everything a job handle can tell about its job, from one round trip."""

from __future__ import annotations

import dataclasses
import datetime as dt

from taskq.broker.base import JobRecord, LogEntry, Status
from taskq.errors import TaskqError
from taskq.message import MAX_MESSAGE_BYTES, unpack


def instant(ms: int | None) -> dt.datetime | None:
    """Unix ms as an aware UTC datetime (None stays None)."""
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class JobInfo:
    """One reading of a job (`job.info()`). Times are aware UTC datetimes (Redis's clock)."""

    id: str
    queue: str
    #: None for a status written by something other than taskq (see `raw_status`)
    status: Status | None
    #: None if the stored message cannot be decoded
    task: str | None
    #: the attempt running now, or the last one (1 for the first run)
    attempt: int | None
    #: None once the job succeeded (its record keeps the result, not the message)
    max_attempts: int | None
    #: last progress a run reported (0.0 to 1.0) and its note; a new attempt starts without
    progress: float | None
    progress_text: str | None
    #: the last failure's traceback text, and why the job is dead (or was cancelled)
    error: str | None
    reason: str | None
    #: the worker holding its lease, while leased
    worker: str | None
    enqueued_at: dt.datetime | None
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    #: times it was handed to a worker, and times its worker died while running it
    deliveries: int = 0
    lost: int = 0
    priority: int = 0
    cancel_requested: bool = False
    raw_status: str | None = None
    #: a workflow step's flow id, and its place in the flow (step of steps, from 1)
    flow: str | None = None
    step: int | None = None
    steps: int | None = None
    #: the partition whose limits and turns the job takes (options(partition=)), or None
    partition: str | None = None
    #: when it runs next while it waits: a scheduled job's due time, or a retry's (status failed:
    #: `retrying`); None when it is not waiting for a time
    due_at: dt.datetime | None = None

    @property
    def retrying(self) -> bool:
        """Whether the job waits for its next attempt (status failed, due at `due_at`)."""
        return self.status is Status.FAILED and self.due_at is not None

    @classmethod
    def of(cls, record: JobRecord, limit: int = MAX_MESSAGE_BYTES) -> JobInfo:
        """The info of a stored job record (a message stored before a limit was lowered still reads)."""
        # a succeeded job keeps no message: its record keeps these
        task, attempt, max_attempts = record.task, record.attempt, record.max_attempts
        try:
            message = unpack(record.message, max(limit, len(record.message)))
        except TaskqError:
            pass
        else:
            task, attempt, max_attempts = message.task, message.attempt, message.max_attempts
        p = record.progress
        flow, step, steps = _place(record.place)
        return cls(record.id, record.queue, record.status, task, attempt, max_attempts,
                   None if p is None else p.fraction, None if p is None else p.text, record.error, record.reason,
                   record.worker, instant(record.enqueued_ms), instant(record.started_ms),
                   instant(record.finished_ms), record.deliveries, record.lost, record.priority,
                   record.cancel_requested, record.raw_status, flow, step, steps, record.partition,
                   instant(record.due_ms))


@dataclasses.dataclass(frozen=True, slots=True)
class LogLine:
    """One line a job logged (`job.logs()`): current_job().log() or a stdlib record of its task."""

    #: when it was written (the worker's clock), an aware UTC datetime
    at: dt.datetime
    #: the level's name: "INFO" for current_job().log(), else the record's ("WARNING", ...)
    level: str
    #: at most 500 characters
    text: str

    @classmethod
    def of(cls, entry: LogEntry) -> LogLine:
        return cls(dt.datetime.fromtimestamp(entry.at_ms / 1000, dt.UTC), entry.level, entry.text)


def _place(place: str | None) -> tuple[str | None, int | None, int | None]:
    """(flow id, step, steps) of a record's place field ("<flow id> <step> <steps>")."""
    parts = (place or "").split()
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None, None, None
    return parts[0], int(parts[1]), int(parts[2])
