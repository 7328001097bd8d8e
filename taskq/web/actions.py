"""What the dashboard's state changes do, once for its pages and its JSON API: the CLI's
actions over the read model and the app (each a plain, blocking function: callers run it on the
thread pool). Each returns a `Done`: what it did, in one line, and the ids it touches."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from taskq import views
from taskq.app import TaskQ
from taskq.broker.base import CANCELLABLE, Status
from taskq.dead_views import DeadFilter, purge_matching, replay_matching
from taskq.errors import TaskqError

#: what can be done to a job
JOB_ACTIONS = ("cancel", "abort", "replay", "purge", "run-now")
#: ... to a queue, a partition, the dead jobs a filter matches, a schedule
QUEUE_ACTIONS = ("pause", "resume")
PARTITION_ACTIONS = ("pause", "resume", "end-backoff")
DEAD_ACTIONS = ("replay", "purge")
SCHEDULE_ACTIONS = ("pause", "resume", "run", "remove")
#: the value of the `confirm` field an action on every matching dead job needs
CONFIRM = "yes"


@dataclasses.dataclass(frozen=True, slots=True)
class Done:
    """An action's outcome: `changed` is False when there was nothing to do."""

    message: str
    changed: bool
    count: int | None = None
    job_id: str | None = None


def _known(action: str, allowed: Sequence[str]) -> None:
    if action not in allowed:
        raise TaskqError(f"unknown action {action!r} (one of: {', '.join(allowed)})")


def allowed(status: str | None) -> list[str]:
    """What can be done to a job in this status (as views show it: "retrying" included)."""
    if status in (Status.SCHEDULED, "retrying"):  # waiting for a time: it may run now instead
        return ["run-now", "cancel"]
    if status in {s.value for s in CANCELLABLE}:
        return ["cancel"]
    if status == Status.RUNNING:
        return ["abort"]
    if status == Status.DEAD:
        return ["replay", "purge"]
    return []


def job(app: TaskQ, job_id: str, action: str, queue: str | None, by: str) -> Done:
    _known(action, JOB_ACTIONS)
    record = views.find(app, job_id, queue)
    if action == "replay":
        done = views.replay(app, record)
    elif action == "purge":
        done = views.purge(app, record) > 0
    elif action == "run-now":
        done = app.job(record.id, record.queue).run_now()
    else:
        handle = app.job(record.id, record.queue)
        done = handle.abort(by) if action == "abort" else handle.cancel()
    return Done(f"{action} {job_id}: {'done' if done else 'nothing to do (it had moved on)'}", done,
                job_id=job_id)


def queue(app: TaskQ, name: str, action: str) -> Done:
    _known(action, QUEUE_ACTIONS)
    changed = views.pause(app, name, action == "pause")
    return Done(f"{action} {name}: {'done' if changed else 'it was already so'}", changed)


def partition(app: TaskQ, name: str, action: str, partition_name: str) -> Done:
    _known(action, PARTITION_ACTIONS)
    views.check_queue(app, name)
    p = app.partition(name, partition_name)
    if action == "end-backoff":
        p.backoff(0)
        return Done(f"{action} {p.name}: done", True)
    changed = p.pause() if action == "pause" else p.resume()
    return Done(f"{action} {p.name}: {'done' if changed else 'it was already so'}", changed)


def schedule(app: TaskQ, schedule_id: str, action: str) -> Done:
    _known(action, SCHEDULE_ACTIONS)
    if action == "run":
        job_id = app.schedules.trigger(schedule_id).id
        return Done(f"run {schedule_id}: enqueued {job_id}", True, job_id=job_id)
    changed = bool(getattr(app.schedules, action)(schedule_id))
    return Done(f"{action} {schedule_id}: {'done' if changed else 'no such schedule'}", changed)


def dead(app: TaskQ, action: str, f: DeadFilter, ids: Sequence[str] | None, confirm: str | None) -> Done:
    """Replay or purge the dead jobs of `ids`, or, with no ids, every one the filter matches:
    that needs confirm="yes", so one stray click or call never empties the dead-letter list."""
    _known(action, DEAD_ACTIONS)
    if ids is None and confirm != CONFIRM:
        raise NeedsConfirm(f"{action} every dead job matching the filter: send confirm={CONFIRM}")
    if action == "purge":
        n = purge_matching(app, f, ids)
        return Done(f"purged {n} dead job(s)", n > 0, count=n)
    n, skipped = replay_matching(app, f, ids)
    said = f"replayed {n} dead job(s)" + (f"; {len(skipped)} not: {skipped[0]}" if skipped else "")
    return Done(said, n > 0, count=n)


class NeedsConfirm(TaskqError):
    """An action on every matching dead job, asked for without confirm=yes."""
