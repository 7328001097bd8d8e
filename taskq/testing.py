"""Helpers for users' own tests: an isolated in-memory broker, running jobs until none is left
(with a fake clock for delays, retries and cron schedules), current_job() in tasks called inline, and an eager
mode where .delay() runs the job before it returns. A pytest plugin offers them as fixtures
(taskq/pytest_plugin.py)."""

from __future__ import annotations

import contextlib
import threading
import uuid
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from taskq.app import TaskQ
from taskq.beat import Beat
from taskq.broker import Broker
from taskq.context import JobContext, running
from taskq.context import job_context as _context_of
from taskq.message import Message
from taskq.worker import Worker

__all__ = ["drain", "eager", "isolated", "job_context"]


def drain(app: TaskQ, queues: Sequence[str] | None = None, *, concurrency: int = 4,
          timeout: float = 60.0, advance: float = 0.0) -> int:
    """Run jobs until ready, scheduled and running are all empty; return how many ran.

    Scheduled jobs (delays, retry backoff) are waited for, unless `advance` is given: then a
    fake clock moves forward instead, by up to `advance` seconds in all, each time to the next
    moment something is due, so a retry's backoff or a delay passes at once and each cron tick
    of the app's schedules in that time fires once (as `taskq beat` would) and its job runs;
    jobs due later are left scheduled. The fake clock of an app's broker keeps its time from
    one call to the next. Raises TimeoutError if the queues are not empty after `timeout` seconds.
    """
    if advance <= 0:
        return _run(app, queues, concurrency, timeout, wait_scheduled=True)
    return _advancing(app, queues, concurrency, timeout, advance, cron=True)


def _advancing(app: TaskQ, queues: Sequence[str] | None, concurrency: int, timeout: float, advance: float, *,
               cron: bool) -> int:
    """drain() with a fake clock moved by up to `advance` seconds; with `cron`, the app's
    schedules fire the ticks it passes."""
    ran, left_ms = 0, int(advance * 1000)
    names = list(queues or app.queues or ["default"])
    broker = app.broker
    scheduled = cron and (len(app.schedules) > 0 or bool(broker.stored_schedule_queues()))
    beat = Beat(app, beat_id=f"taskq.testing.drain:{uuid.uuid4().hex[:6]}") if scheduled else None

    def clock() -> int:
        """The fake now: Redis's clock plus how far drains moved it."""
        return broker.time_ms() + _clock_offsets.get(broker, 0)

    try:
        if beat is not None:
            beat.step(clock())  # a new schedule starts at the fake now (its first tick is the next one)
        while True:
            ran += _run(app, names, concurrency, timeout, wait_scheduled=False)
            dues = [due for due in (broker.promote(q, 0)[1] for q in names) if due is not None]
            next_tick = None if beat is None else beat.next_tick()
            if next_tick is not None:
                dues.append(max(0, next_tick - clock()))
            if not dues or min(dues) > left_ms:
                return ran
            step = max(1, min(dues))
            for q in names:
                broker.advance(q, step)
            _clock_offsets[broker] = _clock_offsets.get(broker, 0) + step
            left_ms -= step
            if beat is not None:
                beat.step(clock())  # fires the ticks the clock reached
    finally:
        if beat is not None:
            broker.resign(beat.id)


#: per broker, how far drain(advance=) moved its fake clock ahead of Redis's (cron ticks)
_clock_offsets: weakref.WeakKeyDictionary[Broker, int] = weakref.WeakKeyDictionary()


def _run(app: TaskQ, queues: Sequence[str] | None, concurrency: int, timeout: float, *,
         wait_scheduled: bool) -> int:
    worker = Worker(app, queues, concurrency=concurrency, burst=True, grace=timeout)
    worker.burst_waits_for_scheduled = wait_scheduled
    thread = threading.Thread(target=worker.run, name="taskq-drain", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(worker.grace)
        raise TimeoutError(f"queues {worker.queues} not empty after {timeout}s")
    return worker.processed


@contextlib.contextmanager
def isolated(app: TaskQ) -> Iterator[TaskQ]:
    """Point `app` at a fresh memory:// broker for the block (nothing reaches a real Redis, and
    nothing is left behind); its own URL and broker come back after."""
    saved = app.url, app._broker, app._known_queues
    app.url, app._broker, app._known_queues = f"memory://isolated-{uuid.uuid4().hex}", None, set()
    try:
        yield app
    finally:
        broker = app._broker
        app.url, app._broker, app._known_queues = saved
        if broker is not None:
            broker.close()


@contextlib.contextmanager
def job_context(task: str = "inline", *, queue: str = "default", attempt: int = 1, max_attempts: int = 1,
                job_id: str | None = None, args: tuple[Any, ...] = (),
                kwargs: dict[str, Any] | None = None) -> Iterator[JobContext]:
    """Run a block as if a worker ran it as a job: `taskq.current_job()` works in a task called
    inline (its progress reports go nowhere). Yields the JobContext the task will see."""
    message = Message(job_id or uuid.uuid4().hex, task, queue, tuple(args), dict(kwargs or {}), attempt,
                      max_attempts)
    token = running.set(message)
    try:
        yield _context_of(message)
    finally:
        running.reset(token)


@contextlib.contextmanager
def eager(app: TaskQ) -> Iterator[TaskQ]:
    """While active, each .delay() (and map()) of the app runs its jobs before it returns, on
    the app's broker (isolated() first, for a test without Redis), with delays and backoffs
    passing at once: job.result() is ready when .delay() returns. A job that a running job
    enqueues runs right after that one, within the same outer .delay(). Cron schedules never
    fire (the fake clock jumps ahead to let a delay pass; beat would fire every tick between)."""
    saved = app.after_submit
    app.after_submit = _Eager(app).run_now
    try:
        yield app
    finally:
        app.after_submit = saved


class _Eager:
    """eager()'s drains: one per .delay() from outside a job; a .delay() from a job they run
    only notes its queue (draining there would wait for that very job to end) for them to drain."""

    def __init__(self, app: TaskQ) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.draining = 0
        self.pending: list[str] = []

    def run_now(self, queue: str) -> None:
        with self.lock:
            if self.draining and running.get() is not None:
                self.pending.append(queue)
                return
            self.draining += 1
        try:
            todo = [queue]
            while todo:
                _advancing(self.app, todo, 1, 60.0, 365 * 86400.0, cron=False)
                with self.lock:
                    todo, self.pending = list(dict.fromkeys(self.pending)), []
        finally:
            with self.lock:
                self.draining -= 1
