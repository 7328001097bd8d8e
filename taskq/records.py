"""Job records as an operator reads them (`taskq job`, `taskq dlq`), and dead-letter replay/purge."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from taskq.app import TaskQ
from taskq.errors import JobNotFound, TaskqError
from taskq.message import Message, pack, unpack, unpack_value

#: dead jobs replayed or purged per broker call
BATCH = 500


def stamp(ms: int | None) -> str | None:
    """A unix-ms instant as ISO 8601 UTC, to the millisecond (None stays None)."""
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _int(fields: dict[str, bytes], name: str) -> int | None:
    raw = fields.get(name)
    return int(raw) if raw is not None and raw.isdigit() else None


def _str(fields: dict[str, bytes], name: str) -> str | None:
    raw = fields.get(name)
    return None if raw is None else raw.decode("utf-8", "replace")


def first_line(text: str | None, width: int = 100) -> str:
    """The first line of a reason or error, cut to `width` characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def describe(app: TaskQ, queue: str, job_id: str, fields: dict[str, bytes]) -> dict[str, Any]:
    """Everything stored about one job, decoded: what `taskq job` and `taskq dlq show` print."""
    out: dict[str, Any] = {"id": job_id, "queue": queue, "status": _str(fields, "status")}
    try:
        message = _message(app, fields)
    except TaskqError as exc:
        out.update(task=None, attempt=None, max_attempts=None, args=None, kwargs=None, message_error=str(exc))
    else:
        out.update(task=message.task, attempt=message.attempt, max_attempts=message.max_attempts,
                   args=list(message.args), kwargs=message.kwargs, priority=message.priority)
    out.update(
        enqueued=stamp(_int(fields, "enqueued_ms")), started=stamp(_int(fields, "started_ms")),
        finished=stamp(_int(fields, "finished_ms")), reason=_str(fields, "reason"), error=_str(fields, "error"),
    )
    if "result" in fields:
        try:
            out["result"] = unpack_value(fields["result"])
        except Exception as exc:  # a foreign writer's bytes: show that, not a traceback
            out["result"] = f"<undecodable result: {exc}>"
    if "progress" in fields:
        out["progress"] = {"fraction": float(fields["progress"]), "text": _str(fields, "progress_text") or "",
                           "at": stamp(_int(fields, "progress_ms"))}
    return out


def _message(app: TaskQ, fields: dict[str, bytes]) -> Message:
    """The stored message, decoded; one stored before a limit was lowered still reads."""
    raw = fields.get("msg", b"")
    return unpack(raw, max(app.max_message_bytes, len(raw)))


def find(app: TaskQ, job_id: str, queue: str | None = None) -> tuple[str, dict[str, bytes]]:
    """The queue and stored fields of a job; JobNotFound naming where it looked."""
    queues = [queue] if queue else known_queues(app)
    holding = app.broker.queues_holding(job_id, queues)
    if not holding:
        where = f"queue {queue!r}" if queue else f"any queue ({', '.join(queues) or 'none known'})"
        raise JobNotFound(f"no job {job_id} in {where} (never enqueued, or its record expired)")
    fields = app.broker.job_fields(holding[0], job_id)
    return holding[0], fields


def known_queues(app: TaskQ) -> list[str]:
    """Every queue Redis knows of plus the app's own."""
    return sorted(set(app.broker.queues()) | set(app.queues))


def check_queue(app: TaskQ, queue: str | None) -> list[str]:
    """[queue] if it is known, every known queue if None; TaskqError for an unknown one."""
    queues = known_queues(app)
    if queue is None:
        return queues
    if queue not in queues:
        raise TaskqError(f"unknown queue {queue!r} (known: {', '.join(queues) or 'none'})")
    return [queue]


@dataclasses.dataclass(frozen=True, slots=True)
class DeadJob:
    """One line of `taskq dlq list`."""

    id: str
    queue: str
    task: str | None
    attempts: int | None
    dead_since: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dead_jobs(app: TaskQ, queues: Sequence[str], limit: int) -> list[DeadJob]:
    """The most recent `limit` dead jobs of each queue, newest first."""
    out: list[DeadJob] = []
    for q in queues:
        entries = app.broker.dead(q, limit)
        records = app.broker.many_job_fields(q, [job_id for job_id, _ in entries])
        for (job_id, died_ms), fields in zip(entries, records, strict=True):
            view = describe(app, q, job_id, fields)
            out.append(DeadJob(job_id, q, view["task"], view["attempt"], stamp(died_ms),
                               first_line(view["reason"] or view.get("message_error"))))
    return out


def replay(app: TaskQ, queue: str, job_id: str, fields: dict[str, bytes]) -> bool:
    """Put a dead job back on its ready list with attempts reset; False if it is not dead."""
    fresh = dataclasses.replace(_message(app, fields), attempt=1)
    return app.broker.replay(queue, job_id, pack(fresh, max(app.max_message_bytes, len(fields["msg"]) + 64)))


def replay_many(app: TaskQ, queue: str, job_ids: Sequence[str],
                skipped: Callable[[str, str], None]) -> Iterator[bool]:
    """Replay dead jobs, yielding per job whether it went back (for a progress bar); a job whose
    message cannot be decoded stays dead and is reported through `skipped`."""
    for start in range(0, len(job_ids), BATCH):
        batch = job_ids[start:start + BATCH]
        for job_id, fields in zip(batch, app.broker.many_job_fields(queue, batch), strict=True):
            try:
                yield bool(fields) and replay(app, queue, job_id, fields)
            except TaskqError as exc:
                skipped(job_id, str(exc))
                yield False


def purge_all(app: TaskQ, queue: str) -> int:
    """Delete every dead job of a queue; returns how many."""
    done = 0
    while ids := app.broker.dead_ids(queue, BATCH):
        done += app.broker.purge(queue, ids)
    return done
