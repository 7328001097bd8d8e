"""Worker: lease jobs in batches, run them on threads (sync) or one event loop (async), renew
their leases while they run, settle their outcomes in batches, stop gracefully.

The parts, each on its own thread: intake (what to start and lease: intake.py), the pool
(where bodies run: pool.py), the settler (outcomes to Redis: settle.py), the lease keeper
(renewal, recovery, heartbeat: leases.py) and the watchdog (watchdog.py). Log lines and
metrics are listeners of the job events the parts emit (taskq/events.py).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from taskq import context, execute
from taskq._version import VERSION
from taskq.app import TaskQ
from taskq.broker import redact
from taskq.broker.base import Delivery
from taskq.errors import BrokerError, ConfigError, MessageInvalid, TaskNotFound
from taskq.events import Emitter, EventKind, JobEvent, log_event, logged_kinds
from taskq.log import get_logger, keep_job_records
from taskq.message import Message, unpack
from taskq.outage import Outage
from taskq.task import TaskBase
from taskq.worker.continuer import Continuer, with_inputs
from taskq.worker.intake import SUSPECT_LOST, Intake
from taskq.worker.joblogs import JobLogs
from taskq.worker.leases import Leases
from taskq.worker.pool import Pool
from taskq.worker.rounds import IntakeLimits
from taskq.worker.settle import Finished, Settler, finished, undeliverable
from taskq.worker.stop import EXIT_TIME_LIMIT, overrun, safely, shutdown, stop_now
from taskq.worker.watchdog import Watchdog

if TYPE_CHECKING:  # prometheus-client is imported only by processes that serve metrics
    from taskq.metrics import JobMetrics

__all__ = ["EXIT_TIME_LIMIT", "VERSION", "Worker", "new_worker_id"]

#: seconds between updates of the count of jobs done in the worker registry, while busy
PUBLISH_EVERY = 0.25

log = get_logger("taskq.worker")


def new_worker_id() -> str:
    """host:pid:random, unique per worker; lease tokens start with it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs jobs from `queues` with `concurrency` jobs at a time in this process.

    Args:
        app: the TaskQ whose registry names the runnable tasks.
        queues: queue names to consume; default every queue of the app's tasks.
        concurrency: jobs run at once (threads for sync tasks, one loop for async).
        grace: seconds a graceful stop waits for running jobs before giving them back.
        burst: stop by itself once the queues are empty (tests, scripts, `make demo`).
        max_jobs: stop gracefully after this many jobs (a supervisor starts a fresh process).
        max_memory_mb: stop gracefully once the resident memory exceeds this many MiB.
        kill_on_timeout: a job over its `timeout` fails at once and this process exits
            (EXIT_TIME_LIMIT) so its supervisor replaces it: threads cannot be stopped.
        parent_pid: stop gracefully when this process is no longer our parent (its
            supervisor died), so no child lingers as an orphan.
        worker_id: the id leases are taken under (a supervisor names its children).
        prefetch: jobs reserved ahead of free slots (default 0). A reserved job is leased to
            this worker (status `reserved`, cancellable) and starts only after Redis confirms it
            was not cancelled and its lease holds, in the fetch that refills the slot: so
            prefetching saves no round trip, it only holds jobs for this worker. Given back at
            shutdown.
        metrics: Prometheus counters to count outcomes into (taskq.metrics), or None.
        log_tracebacks: a failed attempt's log line carries its traceback (structlog's `exception`).
    """

    def __init__(self, app: TaskQ, queues: Sequence[str] | None = None, *, concurrency: int = 8,
                 grace: float = 30.0, burst: bool = False, max_jobs: int | None = None,
                 max_memory_mb: float | None = None, kill_on_timeout: bool = False,
                 parent_pid: int | None = None, worker_id: str | None = None,
                 prefetch: int | None = None, metrics: JobMetrics | None = None, log_tracebacks: bool = True) -> None:
        if concurrency < 1:
            raise ConfigError("concurrency must be >= 1")
        if max_jobs is not None and max_jobs < 1:
            raise ConfigError("max_jobs must be >= 1")
        if prefetch is not None and prefetch < 0:
            raise ConfigError("prefetch must be >= 0")
        self.app = app
        self.broker = app.broker
        self.queues = list(queues or app.queues or ["default"])
        self.concurrency = concurrency
        self.grace = grace
        self.burst = burst
        #: in burst mode, wait for scheduled jobs to fall due (testing.drain(advance=) moves them instead)
        self.burst_waits_for_scheduled = True
        self.max_jobs = max_jobs
        self.id = worker_id or new_worker_id()
        self.processed = 0
        #: set once the worker is stopping (every part's loop ends on it)
        self.stopping = threading.Event()
        self._idle = threading.Event()
        self.events = Emitter()
        self.events.add(log_event if log_tracebacks else functools.partial(log_event, tracebacks=False), logged_kinds())
        if app.hooks.kinds:  # @app.on hooks, run on their own thread
            self.events.add(app.hooks.dispatch, app.hooks.kinds)
        if metrics is not None:
            self.events.add(metrics.observe)
        self.metrics = metrics
        self.outage = Outage(log, worker=self.id)
        self.continuer = Continuer(self.broker, self.queues)
        #: the running jobs' log lines, sent in batches (worker/joblogs.py)
        self.logs = JobLogs(self.broker, [n for n, t in app.tasks.items() if not t.opts.keep_logs])
        self.leases = Leases(self.broker, self.queues, self.id, lease=app.lease, outage=self.outage,
                             on_lost=self._lost, on_abort=self._abort, sweep=self.continuer.sweep, logs=self.logs)
        #: (queue, id) of running jobs whose abort was asked (current_job().abort_requested)
        self._aborting: set[tuple[str, str]] = set()
        self.intake = Intake(self.broker, self.queues, self.id, concurrency=concurrency, prefetch=prefetch or 0,
                             lease=app.lease, limits=IntakeLimits.of(app, max_jobs),
                             unsettled=lambda: self.leases.unsettled, on_lease=self.leases.add)
        self.settler = Settler(self.broker, self.events, self.outage, busy=self._linger,
                               on_recorded=self._recorded, after_batch=self._publish,
                               refill=self.intake.refill, on_refill=self._refilled, continues=self._continue,
                               logs=self.logs.take)
        self.pool = Pool(concurrency, self._started, self._done, self._with_reporter, app.hooks.middleware)
        self.watchdog = Watchdog(worker_id=self.id, stop=self.stopping, kill_on_timeout=kill_on_timeout,
                                 parent_pid=parent_pid, max_memory_mb=max_memory_mb,
                                 on_overrun=lambda over: overrun(self, over))
        #: the listeners of STARTED (the list itself: listeners added later count too)
        self._started_listeners = self.events.listeners[EventKind.STARTED]
        #: seconds of lease a job must have left to start (a third: renewals come every third)
        self._start_margin = app.lease / 3
        self._threads: list[threading.Thread] = []
        # async jobs are created from the intake thread and inherit its context (the reporter)
        self.fetcher = threading.Thread(target=self._with_reporter, args=(self._intake_loop,), name="taskq-intake",
                                        daemon=True)
        self._info: dict[str, str | int] = {}
        self._published = 0.0

    # -- lifecycle --------------------------------------------------------

    def run(self) -> None:
        """Run until stop() is called (or, in burst mode, until the queues are empty)."""
        self.broker.ping()
        self.app.register_queues(self.queues)
        self._info = {
            "host": socket.gethostname(), "pid": os.getpid(), "queues": ",".join(self.queues),
            "concurrency": self.concurrency, "processed": 0, "started_ms": int(time.time() * 1000),
            "version": VERSION,
        }
        self._heartbeat()
        log.info("worker started", worker=self.id, queues=self.queues, concurrency=self.concurrency,
                 url=redact(self.app.url), namespace=self.app.namespace, lease_s=self.app.lease,
                 version=VERSION, pid=os.getpid())
        self.watchdog.warn_unenforced(self.app.tasks.values(), self.queues)
        self.pool.start()
        keep_job_records(True)
        self._spawn(self.settler.run, "taskq-settle")
        self._spawn(lambda: self.leases.run(self.stopping, self._heartbeat), "taskq-leases")
        if self.watchdog.needed:
            self._spawn(self.watchdog.run, "taskq-watchdog")
        self.fetcher.start()
        while not self.stopping.wait(0.2):
            if self.burst and self._idle.is_set():
                break
        try:
            shutdown(self)
        finally:
            keep_job_records(False)
            self.logs.flush()  # lines of jobs given back unsettled

    def stop(self) -> None:
        """Ask for a graceful stop: no more fetching, running jobs finish within `grace`."""
        self.stopping.set()

    def stop_now(self) -> int:
        """Stop at once (a second Ctrl-C): give back every job whose body has not ended, record the
        outcomes of those that have; returns how many went back. Exit the process next."""
        return stop_now(self)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self._with_reporter, args=(target,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self, name: str, timeout: float) -> None:
        """Wait for this worker's thread `name` to end."""
        for thread in self._threads:
            if thread.name == name:
                thread.join(timeout)

    def _with_reporter(self, target: Callable[[], None]) -> None:
        context.reporter.set(self.leases.report_progress)
        context.aborts.set(lambda m: (m.queue, m.id) in self._aborting)
        context.log_sink.set(self.logs.write)
        target()

    def _abort(self, deliveries: list[Delivery]) -> None:
        """job.abort() was asked for these running jobs: an async one is cancelled now, a sync one
        sees current_job().abort_requested."""
        for d in deliveries:
            if (d.queue, d.id) not in self._aborting:
                self._aborting.add((d.queue, d.id))
                cancelled = self.pool.cancel(d)  # an async job: cancelled now
                # a sync one under a supervisor: killed with its process if it runs on past the grace
                killable = not cancelled and self.watchdog.abort(d, self.app.abort_grace)
                log.info("job abort asked", job_id=d.id, queue=d.queue, cancelled_now=cancelled,
                         killed_after_s=self.app.abort_grace if killable else None)

    def _heartbeat(self) -> None:
        self._info["processed"] = self.processed  # all of it each time: a lapsed record comes back whole
        self.broker.heartbeat(self.id, max(1000, int(self.app.lease * 1000)), self._info)

    def _publish(self) -> bool:
        """After a settled batch: the registry's count of jobs done, at most every PUBLISH_EVERY
        while busy, at once when the worker goes idle (so `taskq status` does not lag). False when
        held back (the settler asks again shortly)."""
        now = time.monotonic()
        if now - self._published < PUBLISH_EVERY and not self.intake.idle:
            return False
        self._published = now
        with contextlib.suppress(BrokerError):  # the lease keeper's next heartbeat says it all again
            self._heartbeat()
        return True

    # -- intake -----------------------------------------------------------

    def _intake_loop(self) -> None:
        intake, stopping = self.intake, self.stopping
        while not stopping.is_set():
            intake.wait_for_work(stopping)
            if stopping.is_set():
                return
            if intake.spent:
                if not intake.running:
                    log.info("max jobs reached, recycling", worker=self.id, max_jobs=self.max_jobs)
                    stopping.set()
                    return
                stopping.wait(0.05)
                continue
            try:
                step = intake.step()
                if step.dropped:
                    self.leases.drop(step.dropped)
                if step.give_back:
                    self.leases.give_back(step.give_back)
                for delivery in step.run:
                    self._dispatch(delivery)
                if step.ended:  # workflow steps a fetch ended (expired): their successors hear now
                    for queue, ended in step.ended.items():
                        self._continue(queue, ended)
                if step.idle:
                    if self.burst and self._drained(step.next_due):
                        self._idle.set()
                        stopping.wait(0.05)
                    else:
                        intake.idle_wait(stopping, step.next_due, burst=self.burst)
                self.outage.ok("fetch")
            except BrokerError as exc:
                stopping.wait(self.outage.failed("fetch", exc))
            except Exception:  # a bug must not silently stop this worker fetching
                log.exception("fetch failed")
                stopping.wait(1.0)

    def _drained(self, next_due: float | None) -> bool:
        wait_scheduled = self.burst_waits_for_scheduled
        if (next_due is not None and wait_scheduled) or self.intake.running or len(self.leases):
            return False
        for q in self.queues:
            d = self.broker.depths(q)  # fresh: a job that just failed may be scheduled by now
            if d.ready or d.running or d.reserved or (d.scheduled and wait_scheduled):
                return False
        return True

    def _dispatch(self, delivery: Delivery) -> None:
        """Decode a leased job and hand it to the pool; what cannot run is dead-lettered."""
        if time.monotonic() >= delivery.deadline - self._start_margin:  # stalled since the fetch
            self.intake.ended(delivery)
            self.leases.give_back([delivery])
            return
        message = None
        try:
            message = unpack(delivery.body, self.app.max_message_bytes)
            task = self.app.get_task(message.task)
            if message.flow is not None and message.flow[1]:  # a workflow step: its parents' results first
                message = with_inputs(message)
        except Exception as exc:  # anything undecodable is dead-lettered, never fatal to the worker
            if isinstance(exc, MessageInvalid):
                reason = str(exc)
            elif isinstance(exc, TaskNotFound):
                reason = f"unknown_task: {exc}"
            else:
                reason = f"decode_error: {type(exc).__name__}: {exc}"
            self.leases.settling(delivery)
            self.settler.put(undeliverable(delivery, reason, message))
            self.intake.ended(delivery)
            return
        if delivery.lost >= SUSPECT_LOST and self.concurrency > 1:
            log.warning("running a suspect job alone", job_id=delivery.id, queue=delivery.queue, lost=delivery.lost)
        self.pool.submit(delivery, message, task)

    def _continue(self, queue: str, ids: list[str]) -> None:
        """Tell the successors of workflow steps that just ended; a sweep does it if this fails."""
        try:
            self.continuer.deliver(queue, ids)
        except BrokerError as exc:
            log.warning("could not continue workflow steps; a sweep will", queue=queue, error=str(exc))

    def _lost(self, deliveries: list[Delivery]) -> None:
        """Leases the renewal found lost: whatever was not started must never start."""
        self.intake.forget({d.key for d in deliveries})

    # -- running and settling ---------------------------------------------

    def _started(self, delivery: Delivery, message: Message, task: TaskBase[Any, Any]) -> None:
        if self._started_listeners:
            self.events.emit(JobEvent(EventKind.STARTED, delivery.id, message.task, delivery.queue, message.attempt))
        if self.watchdog.kill_on_timeout:
            self.watchdog.started(delivery, message, task)

    def _done(self, delivery: Delivery, message: Message, outcome: execute.Outcome) -> None:
        if not self.watchdog.kill_on_timeout or self.watchdog.ended(delivery, message):
            self.leases.settling(delivery)
            self.settler.put(finished(delivery, message, outcome, self.app.max_message_bytes))
        self.intake.ended(delivery)

    def _linger(self) -> bool:
        """Whether the settler waits a moment to batch outcomes: while bodies run, unless a cap
        holds a queue (then every outcome frees a slot its settle fills at once)."""
        return self.intake.running > 0 and not self.intake.capped

    def _refilled(self, leased: list[Delivery], sent: float) -> None:
        """Jobs a settle leased for freed slots; given back at once if the worker is stopping."""
        late = self.intake.accept(leased, sent)
        if late:
            self.leases.give_back(late)
        elif self.intake.idling:  # blocked in Redis: its own wake key ends the wait
            safely(lambda: self.broker.wake(self.id, self.queues))

    def _recorded(self, done: list[Finished]) -> None:
        self.leases.drop([f.delivery for f in done])
        if self._aborting:
            self._aborting.difference_update((f.delivery.queue, f.delivery.id) for f in done)
        self.processed += len(done)
        self.intake.recorded()
