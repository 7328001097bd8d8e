"""How a worker ends: the graceful shutdown (running jobs get `grace` seconds, the rest goes back)
and the time-limit exit (a sync job over its limit under a supervisor: the process goes)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import taskq.worker.intake as intake_mod
from taskq import execute
from taskq.app import TaskQ
from taskq.broker.base import Broker
from taskq.errors import Aborted, BrokerError, TimeLimitExceeded
from taskq.log import get_logger
from taskq.worker.intake import Intake
from taskq.worker.leases import Leases
from taskq.worker.pool import Pool
from taskq.worker.settle import Finished, Settler, finished
from taskq.worker.watchdog import Timed

#: exit code of a worker process that killed itself over a job's time limit
EXIT_TIME_LIMIT = 3

log = get_logger("taskq.worker")


class Stopping(Protocol):
    """What stopping needs of a Worker (taskq/worker/__init__.py)."""

    id: str
    app: TaskQ
    queues: list[str]
    grace: float
    processed: int
    intake: Intake
    leases: Leases
    settler: Settler
    pool: Pool
    #: set once the worker is stopping (every part's loop ends on it)
    stopping: threading.Event
    #: the intake thread
    fetcher: threading.Thread

    @property
    def broker(self) -> Broker: ...

    def join(self, name: str, timeout: float) -> None: ...


def safely(call: Callable[[], Any]) -> Any:
    """call(), with a Redis failure logged instead of raised (None)."""
    try:
        return call()
    except BrokerError as exc:
        log.warning("redis call failed during shutdown", error=str(exc))
        return None


def shutdown(w: Stopping) -> None:
    """Stop fetching, give back what never started, let running jobs finish within the grace, give
    back the rest, record every outcome, and leave the registry."""
    w.stopping.set()
    w.intake.close()
    running = w.intake.running
    if running and w.grace > 0:  # said at once: the wait for them may last the whole grace
        log.info(f"finishing {running} running job{'s' * (running > 1)}, Ctrl-C again to stop now",
                 worker=w.id, running=running, grace_s=w.grace)
    broker = w.broker
    safely(lambda: broker.wake(w.id, w.queues))
    safely(lambda: broker.wake_abort(w.id))  # the lease keeper's wait
    w.fetcher.join(timeout=intake_mod.IDLE_BLOCK + 1)
    unstarted = w.intake.unstarted()
    given_back = w.leases.give_back(unstarted) if unstarted else 0  # at once, not after the grace
    w.leases.wait_empty(time.monotonic() + w.grace, busy=lambda: w.intake.running > 0)
    unfinished = w.leases.snapshot()
    if unfinished:  # bodies still running past the grace: interrupted
        given_back += w.leases.give_back(unfinished, ran=True)
    w.settler.close()
    w.join("taskq-settle", timeout=max(5.0, w.app.lease))
    w.app.hooks.flush()  # the hooks of the last events run before the process goes
    w.pool.stop()
    safely(lambda: broker.heartbeat(w.id, 0))  # no longer live
    log.info("worker stopped", worker=w.id, processed=w.processed, given_back=given_back,
             given_back_ids=sorted(d.id for d in [*unfinished, *unstarted])[:20])


def stop_now(w: Stopping, timeout: float = 5.0) -> int:
    """Stop at once: give back every job whose body has not ended (a running one is abandoned: its
    late outcome is refused), record the outcomes already produced; returns how many went back.

    A thread does the Redis calls, within `timeout`: this runs in a signal handler, which may have
    interrupted the main thread holding a lock they need.
    """
    w.stopping.set()
    given_back = [0]

    def hand_back() -> None:
        unstarted = w.intake.unstarted()  # closes the intake: what a settle leases now goes back too
        given_back[0] = w.leases.give_back(unstarted) if unstarted else 0
        held = w.leases.unfinished()  # bodies running now: interrupted
        given_back[0] += w.leases.give_back(held, ran=True) if held else 0
        w.settler.close()
        w.join("taskq-settle", timeout)
        safely(lambda: w.broker.heartbeat(w.id, 0))  # no longer live

    thread = threading.Thread(target=hand_back, name="taskq-stop-now", daemon=True)
    thread.start()
    thread.join(timeout)
    log.info("worker stopped at once", worker=w.id, processed=w.processed, given_back=given_back[0])
    return given_back[0]


def overrun(w: Stopping, over: Sequence[Timed]) -> None:
    """Fail the overrunning jobs, record what already finished, give back the rest, exit.

    A thread cannot be stopped, so the process goes; its supervisor starts a new one.
    """
    w.stopping.set()
    failed = [_failed(w, t) for t in over]
    try:
        w.settler.closing = True
        w.settler.record_until_done(failed, give_up=time.monotonic() + w.app.lease)
        w.settler.close()  # it records what had finished, then returns
        w.join("taskq-settle", timeout=w.app.lease)
        rest = w.leases.snapshot()
        if rest:  # the other bodies this process runs are interrupted with it
            w.leases.give_back(rest, ran=True)
        safely(lambda: w.broker.heartbeat(w.id, 0))  # no longer live
        log.info("worker stopped", worker=w.id, processed=w.processed, given_back=len(rest),
                 given_back_ids=sorted(d.id for d in rest)[:20], exit_code=EXIT_TIME_LIMIT)
    finally:
        os._exit(EXIT_TIME_LIMIT)


def _failed(w: Stopping, t: Timed) -> Finished:
    """The failed outcome of a job the watchdog stops (over its time limit, or aborted)."""
    took, abort_grace = t.ran, w.app.abort_grace
    exc: Exception = TimeLimitExceeded(f"time limit exceeded: killed after {took:.1f}s (timeout {t.message.timeout}s)")
    fields = {"job_id": t.delivery.id, "task": t.message.task, "queue": t.delivery.queue, "attempt": t.message.attempt}
    if t.aborted:
        exc = Aborted(f"job {t.delivery.id} was aborted and still ran after {abort_grace:g}s")
        log.error("aborted job still running, killing this worker process", abort_grace_s=abort_grace, **fields)
    else:
        log.error("time limit exceeded, killing this worker process", timeout_s=t.message.timeout, **fields)
    w.leases.settling(t.delivery)
    return finished(t.delivery, t.message, execute.failed(t.task, t.message, exc, took), w.app.max_message_bytes)
