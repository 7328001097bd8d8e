"""The read model: what operators see of queues, jobs, dead letters, workers and schedules.

Typed views built from the broker's records (never from raw Redis fields), for `taskq status`,
`taskq job`, `taskq dlq`, the metrics and the dashboard (a queue's jobs by state, a page at a time;
jobs finished per minute from the event streams); plus dead-letter replay and purge.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from taskq.broker.base import Broker, Depths, JobRecord, Status
from taskq.errors import JobNotFound, TaskqError
from taskq.events import JobEvent
from taskq.info import JobInfo
from taskq.message import Message, unpack, unpack_value
from taskq.schedule_views import ScheduleSource, schedule_infos
from taskq.stats_views import history


class _Named(Protocol):
    name: str


class ScheduleRegistry(Protocol):
    """What the read model reads of an app's schedules (taskq.schedules.Schedules is one)."""

    @property
    def code(self) -> Mapping[str, ScheduleSource]: ...


class PolicySource(Protocol):
    """What the read model shows of a queue's flow control (taskq.limits.QueuePolicy is one)."""

    def describe(self) -> str: ...
    @property
    def rate(self) -> tuple[int, int] | None: ...
    @property
    def max_running(self) -> int | None: ...


class TaskOptionsSource(Protocol):
    @property
    def rate_limit(self) -> str | None: ...
    @property
    def max_running(self) -> int | None: ...


class TaskSource(Protocol):
    """What the read model shows of a task (taskq.Task is one): its own limits."""

    @property
    def opts(self) -> TaskOptionsSource: ...


class Source(Protocol):
    """What the read model reads of an app (taskq.TaskQ is one); the views sit below the app
    and know it only by this."""

    max_message_bytes: int

    @property
    def broker(self) -> Broker: ...
    @property
    def schedules(self) -> ScheduleRegistry: ...
    @property
    def queue_policies(self) -> Mapping[str, PolicySource]: ...
    @property
    def tasks(self) -> Mapping[str, TaskSource]: ...
    def known_queues(self) -> list[str]: ...


#: dead jobs replayed or purged per broker call
BATCH = 500
#: running jobs listed per queue (the longest-held first)
RUNNING_SHOWN = 20


def stamp(ms: int | None, *, seconds: bool = False) -> str | None:
    """A unix-ms instant as ISO 8601 UTC, to the millisecond (or the second); None stays None."""
    if ms is None:
        return None
    instant = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    if seconds:
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def first_line(text: str | None, width: int = 100) -> str:
    """The first line of a reason or error, cut to `width` characters."""
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


#: what describe() says of the arguments of a job that succeeded (lib/finish.lua keeps no message)
NOT_KEPT = "arguments not kept: a succeeded job's record keeps its result, not its message"


def message_of(app: Source, record: JobRecord) -> Message:
    """The stored message, decoded; one stored before a limit was lowered still reads."""
    return unpack(record.message, max(app.max_message_bytes, len(record.message)))


def describe(app: Source, record: JobRecord) -> dict[str, Any]:
    """Everything stored about one job, decoded: what `taskq job` and `taskq dlq show` print
    (the fields of taskq.JobInfo, with times as ISO 8601 text, plus the arguments and result)."""
    info = JobInfo.of(record, app.max_message_bytes)
    out: dict[str, Any] = {"id": info.id, "queue": info.queue, "status": shown_status(record), "task": info.task,
                           "attempt": info.attempt, "max_attempts": info.max_attempts, "due": stamp(record.due_ms)}
    try:
        message = message_of(app, record)
    except TaskqError as exc:
        why = NOT_KEPT if record.status is Status.SUCCEEDED and not record.message else str(exc)
        out.update(args=None, kwargs=None, message_error=why)
    else:
        out.update(args=list(message.args), kwargs=message.kwargs, priority=message.priority)
    out.update(enqueued=stamp(record.enqueued_ms), started=stamp(record.started_ms),
               finished=stamp(record.finished_ms), reason=info.reason, error=info.error,
               worker=info.worker, deliveries=info.deliveries, lost=info.lost, partition=info.partition)
    if info.flow is not None:
        out["flow"] = {"id": info.flow, "step": info.step, "steps": info.steps}
    if record.result is not None:
        try:
            out["result"] = unpack_value(record.result)
        except Exception as exc:  # a foreign writer's bytes: show that, not a traceback
            out["result"] = f"<undecodable result: {exc}>"
    if record.progress is not None:
        p = record.progress
        out["progress"] = {"fraction": p.fraction, "text": p.text, "at": stamp(p.at_ms)}
    return out


def shown_status(record: JobRecord) -> str | None:
    """The status operators see: a job waiting for its retry (stored `failed`, in the scheduled
    set) is `retrying`; otherwise the stored one."""
    if record.status is Status.FAILED and record.due_ms is not None:
        return "retrying"
    return record.status.value if record.status is not None else record.raw_status


def find(app: Source, job_id: str, queue: str | None = None) -> JobRecord:
    """A job's record, from its queue or from whichever known queue holds it; JobNotFound
    naming where it looked."""
    queues = [queue] if queue else app.known_queues()
    for q in app.broker.queues_holding(job_id, queues):
        record = app.broker.job(q, job_id)
        if record is not None:
            return record
    where = f"queue {queue!r}" if queue else f"any queue ({', '.join(queues) or 'none known'})"
    raise JobNotFound(f"no job {job_id} in {where} (never enqueued, or its record expired)")


def check_queue(app: Source, queue: str | None) -> list[str]:
    """[queue] if it is known, every known queue if None; TaskqError for an unknown one."""
    queues = app.known_queues()
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


def dead_jobs(app: Source, queues: Sequence[str], limit: int) -> list[DeadJob]:
    """The most recent `limit` dead jobs of each queue, newest first."""
    out: list[DeadJob] = []
    for q in queues:
        entries = app.broker.dead(q, limit)
        records = app.broker.jobs(q, [e.id for e in entries])
        for entry, record in zip(entries, records, strict=True):
            if record is None:
                continue
            view = describe(app, record)
            out.append(DeadJob(entry.id, q, view["task"], view["attempt"], stamp(entry.ms),
                               first_line(view["reason"] or view.get("message_error"))))
    return out


def dead_record(app: Source, job_id: str, queue: str | None) -> JobRecord:
    """A job that is in the dead-letter list; TaskqError saying where it is otherwise."""
    record = find(app, job_id, queue)
    if record.status is not Status.DEAD:
        status = record.status.value if record.status is not None else record.raw_status or "?"
        raise TaskqError(f"job {job_id} in queue {record.queue!r} is {status}, not in the dead-letter list")
    return record


def replay(app: Source, record: JobRecord) -> bool:
    """Put a dead job back on its ready list with attempts reset; False if it is not dead. A
    workflow step ended by a failure upstream is not replayed: it resumes by itself once the step
    its reason names is replayed and succeeds (taskq/workflow.py)."""
    if record.reason and record.reason.startswith("upstream_failed:"):
        raise TaskqError(f"job {record.id} waits for its workflow's failed step: replay that one "
                         f"({record.reason.removeprefix('upstream_failed: ')}) and this one resumes")
    limit = max(app.max_message_bytes, len(record.message) + 64)
    return app.broker.replay(record.queue, record.id, message_of(app, record).packed(attempt=1, limit=limit))


def replay_many(app: Source, queue: str, skipped: Callable[[str, str], None]) -> tuple[int, Iterator[bool]]:
    """Every dead job of a queue: how many there are, and an iterator replaying them, yielding per
    job whether it went back (for a progress bar). One whose message cannot be decoded stays dead
    and is reported through `skipped`."""
    ids = [e.id for e in app.broker.dead(queue, None)]

    def run() -> Iterator[bool]:
        for start in range(0, len(ids), BATCH):
            batch = ids[start:start + BATCH]
            for job_id, record in zip(batch, app.broker.jobs(queue, batch), strict=True):
                try:
                    yield record is not None and replay(app, record)
                except TaskqError as exc:
                    skipped(job_id, str(exc))
                    yield False

    return len(ids), run()


def purge(app: Source, record: JobRecord) -> int:
    return app.broker.purge(record.queue, [record.id])


def purge_all(app: Source, queue: str) -> int:
    """Delete every dead job of a queue; returns how many."""
    done = 0
    while ids := [e.id for e in app.broker.dead(queue, BATCH)]:
        done += app.broker.purge(queue, ids)
    return done


def snapshot(app: Source) -> dict[str, Any]:
    """One reading of everything `taskq status` reports (raises BrokerError if Redis is down)."""
    broker = app.broker
    now = broker.time_ms()
    workers = [{
        "id": w.id, "host": w.host, "pid": w.pid, "queues": list(w.queues), "concurrency": w.concurrency,
        "processed": w.processed, "heartbeat_age_s": round((now - (w.beat_ms or now)) / 1000, 3),
    } for w in sorted(broker.live_workers(), key=lambda w: w.id)]
    leader = broker.leader()
    schedules = []
    for info in schedule_infos(broker, app.schedules.code):
        view = info.as_view()  # and the names `taskq status --json` gave them before schedules were stored
        schedules.append({**view, "name": info.id, "last_fired": view["last_at"], "next_fire": view["next_at"],
                          "last_skipped": view["skipped_at"]})
    depths = {}
    running = []
    queues = app.known_queues()  # one read of the registry for the whole snapshot
    paused = broker.paused(queues)
    for q in queues:
        oldest = broker.oldest_ready_ms(q)
        depth = broker.depths(q)
        depths[q] = {**depth.as_dict(),
                     "oldest_ready_age_s": None if oldest is None else round(max(0, now - oldest) / 1000, 3),
                     "held_by": held(app, q, depth, now), "paused": q in paused,
                     "largest_partition": largest_partition(app, q) if depth.partitions else None}
        leased = broker.running(q, RUNNING_SHOWN)
        for record in broker.jobs(q, [e.id for e in leased]):
            if record is None or record.status is not Status.RUNNING:
                continue
            view = describe(app, record)
            running.append({"id": record.id, "queue": q, "task": view["task"], "attempt": view["attempt"],
                            "running_s": None if record.started_ms is None
                            else round(max(0, now - record.started_ms) / 1000, 3),
                            "worker": record.worker, "progress": view.get("progress")})
    return {
        "time": stamp(now, seconds=True),
        "queues": depths,
        "running": running,
        "workers": workers,
        "beat": {"leader": leader.beat_id if leader else None,
                 "lease_left_s": round(leader.lease_left_ms / 1000, 3) if leader else None},
        "schedules": schedules,
        "limits": {q: p.describe() for q, p in sorted(app.queue_policies.items())},
        "task_limits": {name: ", ".join(f"{k}={v}" for k, v in (("rate_limit", t.opts.rate_limit),
                                                                ("max_running", t.opts.max_running)) if v)
                        for name, t in sorted(app.tasks.items()) if t.opts.rate_limit or t.opts.max_running},
    }


def largest_partition(app: Source, queue: str) -> dict[str, Any] | None:
    """The queue's partition with the most jobs waiting in its lanes: its name and that count."""
    names = app.broker.partition_names(queue, 1)
    return {"name": names[0], "ready": app.broker.partition_state(queue, names[0]).waiting} if names else None


def held(app: Source, queue: str, depth: Depths, now_ms: int) -> dict[str, Any]:
    """The queue's jobs that wait on a flow limit, by limit: its rate limit (the window is full)
    or cap (every slot is leased) hold all its ready jobs; the rest wait behind an ordering key
    or are held back by their task's own limits (by_task: per task)."""
    policy = app.queue_policies.get(queue)
    rate = policy.rate if policy else None
    holds = app.broker.holds(queue, rate[1] if rate else 0, now_ms)
    by_rate = depth.ready if rate and holds.rate_starts >= rate[0] else 0
    cap = policy.max_running if policy else None
    by_cap = depth.ready if not by_rate and cap and depth.running + depth.reserved >= cap else 0
    return {"rate": by_rate, "cap": by_cap, "ordering_key": depth.ordered,
            "task_limits": sum(holds.by_task.values()), "by_task": holds.by_task}


def event_view(event: JobEvent) -> dict[str, Any]:
    """One streamed event as `taskq events` shows it (and its --json line)."""
    view: dict[str, Any] = {"at": stamp(event.at_ms), "kind": event.kind.value, "queue": event.queue,
                            "task": event.task, "job_id": event.job_id, "attempt": event.attempt}
    for name in ("error", "reason", "delay_s", "duration_ms", "progress", "text"):
        value = getattr(event, name)
        if value is not None:
            view[name] = value
    view["event_id"] = event.event_id
    return view


def queue_list(app: Source) -> list[dict[str, Any]]:
    """`taskq queue list`: each known queue's depths and whether it is paused."""
    queues = app.known_queues()
    paused = app.broker.paused(queues)
    return [{"queue": q, **app.broker.depths(q).as_dict(), "paused": q in paused} for q in queues]


def queue_state(app: Source, queue: str) -> dict[str, Any]:
    """One known queue's depths and whether it is paused (the dashboard's queue page)."""
    check_queue(app, queue)
    return {**app.broker.depths(queue).as_dict(), "paused": queue in app.broker.paused([queue])}


def pause(app: Source, queue: str, paused: bool) -> bool:
    """Pause (or resume) a known queue for every worker; whether that changed it."""
    check_queue(app, queue)
    return app.broker.pause(queue, paused)


def empty(app: Source, queue: str, by: str) -> int:
    """Cancel every job of a known queue that has not started; how many."""
    check_queue(app, queue)
    return app.broker.empty(queue, f"purged: {by}")


# -- a queue's jobs by state, and jobs finished per minute (the dashboard, `taskq job --state`) --

#: the states a queue's jobs are listed by (succeeded and cancelled: the ids the queue's capped
#: lists still hold, see job_views.ended_jobs)
STATES = ("ready", "scheduled", "running", "dead", "succeeded", "cancelled")


def queue_jobs(app: Source, queue: str, state: str, offset: int = 0, limit: int = 50) -> list[dict[str, Any]]:
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
        rows.append({"id": job_id, "queue": queue, "task": info.task, "status": shown_status(record),
                     "attempt": info.attempt, "enqueued": stamp(record.enqueued_ms, seconds=True),
                     "finished": stamp(record.finished_ms, seconds=True), "reason": record.reason,
                     "due": stamp(record.due_ms, seconds=True)})
    return rows


def queue_history(app: Source, queue: str, since_s: int, step_s: int) -> dict[str, Any]:
    """A queue's history for the dashboard's charts: one value per step of each series, and the
    window's first and last step as ISO times."""
    check_queue(app, queue)
    points = history(app.broker, [queue], since=since_s, step=step_s)
    return {"start": stamp(int(points[0].at.timestamp()) * 1000, seconds=True),
            "end": stamp(int(points[-1].at.timestamp()) * 1000, seconds=True),
            "succeeded": [p.succeeded for p in points], "failed": [p.failed + p.dead for p in points],
            "runtime_ms_avg": [round(p.runtime_ms_avg, 1) for p in points],
            "wait_ms_avg": [round(p.wait_ms_avg, 1) for p in points]}


def per_minute(app: Source, queues: Sequence[str], minutes: int = 60) -> dict[str, Any]:
    """Jobs that succeeded and attempts that failed in each of the last `minutes` minutes, from
    the queues' history (lua/lib/stats.lua: counted by the scripts, minutes kept 25 hours)."""
    points = history(app.broker, queues, since=minutes * 60, step=60)
    start = stamp(int(points[0].at.timestamp()) * 1000, seconds=True)
    return {"start": start, "succeeded": [p.succeeded for p in points], "failed": [p.failed for p in points]}
