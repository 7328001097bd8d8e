"""Job events: what happens to a job where it happens, and the listeners that observe it.

The worker emits one JobEvent per transition (started, succeeded, retrying, dead, cancelled,
lost); its log lines and Prometheus counters are listeners. Listeners run in the emitting
thread, so they must be quick; one that raises is logged once and never breaks the job.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable
from typing import Protocol

from taskq.log import enabled, get_logger

log = get_logger("taskq.worker")


class EventKind(enum.StrEnum):
    ENQUEUED = "enqueued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    DEAD = "dead"
    CANCELLED = "cancelled"
    #: a running job reported progress (in the event stream only: app.events())
    PROGRESS = "progress"
    #: an outcome refused because the run had lost its lease (another delivery owns the job)
    LOST = "lost"


@dataclasses.dataclass(frozen=True, slots=True)
class JobEvent:
    """One transition of one job."""

    kind: EventKind
    job_id: str
    task: str
    queue: str
    attempt: int
    #: the failure, for retrying and dead ("Type: message"; the full traceback is stored)
    error: str | None = None
    duration_ms: float | None = None
    #: why a job is dead; for LOST, which outcome was discarded (result, retry, dead-letter)
    reason: str | None = None
    #: seconds until the retry, for retrying
    delay_s: float | None = None
    #: for progress: the fraction done and its text
    progress: float | None = None
    text: str | None = None
    #: read from the event stream (app.events()): the entry's id, to resume after it, and when
    #: it happened (unix ms, the broker's clock); None for a hook's event
    event_id: str | None = None
    at_ms: int | None = None
    #: for retrying and dead, in the worker: the traceback as stored (taskq's frames cut), or None for
    #: a failure raised on purpose (Retry, Reject, RateLimited) or a time limit
    traceback: str | None = None


Listener = Callable[[JobEvent], None]


class Sink(Protocol):
    """Where a producer's job events go (the app's @app.on hooks, taskq/hooks.py): asked first
    whether anyone wants a kind, so an unwanted event is never built."""

    def wants(self, kind: EventKind) -> bool: ...
    def dispatch(self, event: JobEvent) -> None: ...


class Emitter:
    """Listeners by event kind; an event is built only if some listener wants its kind."""

    def __init__(self) -> None:
        self.listeners: dict[EventKind, list[Listener]] = {kind: [] for kind in EventKind}
        self._failed: set[int] = set()

    def add(self, listener: Listener, kinds: tuple[EventKind, ...] = tuple(EventKind)) -> None:
        for kind in kinds:
            self.listeners[kind].append(listener)

    def wants(self, kind: EventKind) -> bool:
        return bool(self.listeners[kind])

    def emit(self, event: JobEvent) -> None:
        for listener in self.listeners[event.kind]:
            try:
                listener(event)
            except Exception:  # a listener must never fail the job; say so once per listener
                if id(listener) not in self._failed:
                    self._failed.add(id(listener))
                    log.exception("event listener failed", listener=getattr(listener, "__qualname__", repr(listener)),
                                  kind=event.kind.value, job_id=event.job_id)


def logged_kinds() -> tuple[EventKind, ...]:
    """The kinds log_event() writes a line for at the configured level (so a quiet worker does
    not even build the events nobody reads)."""
    kinds = [EventKind.RETRYING, EventKind.DEAD, EventKind.LOST]
    if enabled(logging.INFO):
        kinds += [EventKind.SUCCEEDED, EventKind.CANCELLED]
    if enabled(logging.DEBUG):
        kinds.append(EventKind.STARTED)
    return tuple(kinds)


def log_event(event: JobEvent, tracebacks: bool = True) -> None:
    """The worker's log line for a job event (key=value, or JSON with --log-format json); a
    failure's traceback goes in structlog's `exception` field (JSON keeps it whole), unless
    `tracebacks` is False (`taskq worker --no-log-tracebacks`)."""
    kind = event.kind
    if kind is EventKind.STARTED:
        if enabled(logging.DEBUG):
            log.debug("job started", job_id=event.job_id, task=event.task, queue=event.queue, attempt=event.attempt)
        return
    if kind is EventKind.SUCCEEDED and not enabled(logging.INFO):
        return
    fields = {"job_id": event.job_id, "task": event.task, "queue": event.queue, "attempt": event.attempt,
              "duration_ms": event.duration_ms}
    if kind is EventKind.SUCCEEDED:
        log.info("job succeeded", **fields)
    elif kind is EventKind.RETRYING:
        if tracebacks and event.traceback:
            fields["exception"] = event.traceback
        log.warning("job retrying", delay_s=event.delay_s, error=event.error, **fields)
    elif kind is EventKind.DEAD:
        if tracebacks and event.traceback:
            fields["exception"] = event.traceback
        log.error("job dead", reason=event.reason, **fields)
    elif kind is EventKind.CANCELLED:
        log.info("job cancelled", **fields)
    elif kind is EventKind.LOST:
        log.warning(f"lease lost, {event.reason or 'outcome'} discarded", **fields)
