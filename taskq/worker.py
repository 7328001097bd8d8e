"""Worker: fetch leased jobs in batches, run them on threads (sync) or one event loop
(async), renew leases while they run, acknowledge in batches, stop gracefully."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import importlib.metadata
import logging
import os
import queue as queue_mod
import socket
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from taskq import context, execute
from taskq.app import TaskQ
from taskq.broker import Delivery, redact
from taskq.errors import BrokerError, BrokerUnavailable, MessageInvalid, TaskNotFound, TimeLimitExceeded
from taskq.log import enabled as log_enabled
from taskq.log import get_logger
from taskq.message import Message, pack, unpack
from taskq.task import TaskBase

if TYPE_CHECKING:  # prometheus-client is imported only by processes that serve metrics
    from taskq.metrics import JobMetrics

VERSION = importlib.metadata.version("taskq")

#: longest single blocking wait in Redis, in seconds (bounds shutdown and schedule drift)
IDLE_BLOCK = 5.0
#: an idle worker fetches at least this often (seconds) even without a wake-up token
SAFETY_FETCH = 60.0
#: most jobs acknowledged in one script call
ACK_BATCH = 256
#: seconds a busy worker waits to gather more outcomes into one ack call
ACK_LINGER = 0.001
#: cap of the reconnect backoff while Redis is unreachable, in seconds
RECONNECT_MAX = 5.0

#: seconds between watchdog checks (time limits, parent process, memory)
WATCHDOG_TICK = 0.1
#: seconds past an async job's limit before the watchdog kills (its loop normally cancels it first)
ASYNC_KILL_SLACK = 1.0
#: exit code of a worker process that killed itself over a job's time limit
EXIT_TIME_LIMIT = 3

log = get_logger("taskq.worker")


def new_worker_id() -> str:
    """host:pid:random, unique per worker; lease tokens start with it."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def resident_mb() -> float:
    """This process's resident memory in MiB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)


@dataclasses.dataclass(slots=True)
class _Finished:
    delivery: Delivery
    message: Message
    outcome: execute.Outcome
    #: set once Redis has the outcome, so a batch retried after an outage skips it
    recorded: bool = False


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
        prefetch: jobs leased ahead of free slots (default = concurrency), so a finished
            job's slot refills without a Redis round trip; given back at shutdown.
        metrics: Prometheus counters to count outcomes into (taskq.metrics), or None.
    """

    def __init__(self, app: TaskQ, queues: Sequence[str] | None = None, *, concurrency: int = 8,
                 grace: float = 30.0, burst: bool = False, max_jobs: int | None = None,
                 max_memory_mb: float | None = None, kill_on_timeout: bool = False,
                 parent_pid: int | None = None, worker_id: str | None = None,
                 prefetch: int | None = None, metrics: JobMetrics | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if max_jobs is not None and max_jobs < 1:
            raise ValueError("max_jobs must be >= 1")
        self.app = app
        self.broker = app.broker
        self.queues = list(queues or app.queues or ["default"])
        self.concurrency = concurrency
        self.grace = grace
        self.burst = burst
        self.max_jobs = max_jobs
        self.max_memory_mb = max_memory_mb
        self.kill_on_timeout = kill_on_timeout
        self.parent_pid = parent_pid
        self.id = worker_id or new_worker_id()
        self.lease_ms = int(app.lease * 1000)
        self.processed = 0
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._lock = threading.Condition()
        self._executing = 0
        self._held: dict[str, Delivery] = {}
        self._work: queue_mod.SimpleQueue[tuple[Delivery, Message, TaskBase[Any, Any]] | None] = queue_mod.SimpleQueue()
        self._finished: queue_mod.SimpleQueue[_Finished | None] = queue_mod.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._redis_down_since: float | None = None
        #: suspects (their worker died running them) waiting to run alone, and the one running
        self._quarantine: collections.deque[Delivery] = collections.deque()
        #: prefetched jobs (leased, renewed) waiting for a free slot; given back at shutdown
        self._buffer: collections.deque[Delivery] = collections.deque()
        self.prefetch = concurrency if prefetch is None else prefetch
        self._alone: str | None = None
        #: jobs with a time limit, by id: (delivery, message, task, monotonic deadline)
        self._timed: dict[str, tuple[Delivery, Message, TaskBase[Any, Any], float]] = {}
        self.metrics = metrics

    # -- lifecycle --------------------------------------------------------

    def run(self) -> None:
        """Run until stop() is called (or, in burst mode, until the queues are empty)."""
        self.broker.ping()
        self.broker.register_queues(self.queues)
        self._info: dict[str, str | int] = {
            "host": socket.gethostname(), "pid": os.getpid(), "queues": ",".join(self.queues),
            "concurrency": self.concurrency, "processed": 0, "started_ms": int(time.time() * 1000),
            "version": VERSION,
        }
        self.broker.heartbeat(self.id, self._heartbeat_ttl_ms, self._info)
        log.info("worker started", worker=self.id, queues=self.queues, concurrency=self.concurrency,
                 url=redact(self.app.url), lease_s=self.app.lease, version=VERSION, pid=os.getpid())
        self._start()
        while not self._stop.wait(0.2):
            if self.burst and self._idle.is_set():
                break
        self._shutdown()

    def stop(self) -> None:
        """Ask for a graceful stop: no more fetching, running jobs finish within `grace`."""
        self._stop.set()

    def _start(self) -> None:
        def spawn(target: Any, name: str) -> None:
            thread = threading.Thread(target=self._with_reporter, args=(target,), name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

        for i in range(self.concurrency):
            spawn(self._job_thread, f"taskq-job-{i}")
        self._loop = asyncio.new_event_loop()  # async tasks share this one loop
        spawn(self._loop.run_forever, "taskq-loop")
        spawn(self._ack_thread, "taskq-ack")
        spawn(self._heartbeat_thread, "taskq-heartbeat")
        if self.kill_on_timeout or self.parent_pid or self.max_memory_mb:
            spawn(self._watchdog_thread, "taskq-watchdog")
        # async jobs are created from the fetch thread and inherit its context (the reporter)
        self._fetcher = threading.Thread(target=self._with_reporter, args=(self._fetch_thread,),
                                         name="taskq-fetch", daemon=True)
        self._fetcher.start()

    def _with_reporter(self, target: Any) -> None:
        context.reporter.set(self._report_progress)
        target()

    def _report_progress(self, message: Message, fraction: float, text: str) -> None:
        """Store a running job's progress under its lease token (current_job().progress)."""
        delivery = self._held.get(message.id)
        if delivery is None:
            return
        try:
            if not self.broker.progress(delivery.queue, delivery.id, delivery.token, fraction, text):
                log.warning("lease lost, progress discarded", job_id=delivery.id, queue=delivery.queue)
        except BrokerError as exc:
            log.warning("progress not stored", job_id=delivery.id, queue=delivery.queue, error=str(exc))

    def _shutdown(self) -> None:
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        self._safely(lambda: self.broker.wake(self.id))
        self._fetcher.join(timeout=IDLE_BLOCK + 1)
        with self._lock:
            unstarted = [*self._buffer, *self._quarantine]
            self._buffer.clear()
            self._quarantine.clear()
        given_back = 0
        if unstarted:  # prefetched, never started: back to the queue now, not after the grace
            given_back = self._safely(lambda: self._give_back(unstarted)) or 0
        deadline = time.monotonic() + self.grace
        with self._lock:
            while (self._executing or self._held) and time.monotonic() < deadline:
                self._lock.wait(timeout=0.05)
            unfinished = dict(self._held)
        for q in self.queues:
            pairs = [(d.id, d.token) for d in unfinished.values() if d.queue == q]
            if pairs:
                given_back += self._safely(functools.partial(self.broker.release, q, pairs)) or 0
        self._finished.put(None)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._safely(lambda: self.broker.heartbeat(self.id, 0))  # no longer live
        log.info("worker stopped", worker=self.id, processed=self.processed, given_back=given_back,
                 given_back_ids=sorted([*unfinished, *(d.id for d in unstarted)])[:20])

    def _safely(self, call: Any) -> Any:
        try:
            return call()
        except BrokerError as exc:
            log.warning("redis call failed during shutdown", error=str(exc))
            return None

    # -- fetching ---------------------------------------------------------

    def _fetch_thread(self) -> None:
        queue_empty = False  # the last fetch found nothing: wait for a free slot, not in Redis
        while not self._stop.is_set():
            suspect = None
            ready: list[Delivery] = []
            with self._lock:
                # a suspect job runs alone, so if it kills the process nothing else is blamed
                while not self._stop.is_set() and (
                    self._alone is not None or (self._quarantine and self._executing)
                    or (self._executing >= self.concurrency and (len(self._buffer) >= self.prefetch or queue_empty))
                ):
                    self._lock.wait(timeout=1.0)
                if self._stop.is_set():
                    return
                parked: list[Delivery] = []
                if self._quarantine:
                    suspect = self._quarantine.popleft()
                    self._alone = suspect.id
                    # hold nothing else while it runs, or a crash would count against those too
                    parked = [*self._quarantine, *self._buffer]
                    self._quarantine.clear()
                    self._buffer.clear()
                else:
                    while self._buffer and self._executing + len(ready) < self.concurrency:
                        ready.append(self._buffer.popleft())
                room = self.concurrency + self.prefetch - self._executing - len(ready) - len(self._buffer)
                if self.max_jobs is not None:
                    left = self.max_jobs - self.processed - len(self._held)
                    if left <= 0 and suspect is None and not ready:
                        log.info("max jobs reached, recycling", worker=self.id, max_jobs=self.max_jobs)
                        self._stop.set()
                        return
                    room = min(room, left)
                block = not self._buffer and not ready  # nothing here to run: may wait in Redis
            try:
                if suspect is not None:
                    try:
                        self._give_back(parked)
                    except BrokerError:
                        with self._lock:  # try again later, as it was
                            self._quarantine.extendleft(reversed([suspect, *parked]))
                            self._alone = None
                        raise
                    log.warning("running a suspect job alone", job_id=suspect.id, queue=suspect.queue,
                                lost=suspect.lost)
                    self._dispatch(suspect)
                else:
                    for delivery in ready:
                        self._dispatch(delivery)
                    if room > 0:
                        queue_empty = self._fetch_once(room, block) == 0
                self._redis_back()
            except BrokerError as exc:
                self._redis_down(exc)
            except Exception:  # a bug must not silently stop this worker fetching
                log.exception("fetch failed")
                self._stop.wait(1.0)

    def _give_back(self, deliveries: list[Delivery]) -> int:
        """Release jobs this worker holds but has not started (no attempt, no blame)."""
        released = 0
        for q in {d.queue for d in deliveries}:
            released += self.broker.release(q, [(d.id, d.token) for d in deliveries if d.queue == q])
        with self._lock:
            for d in deliveries:
                self._held.pop(d.id, None)
            self._lock.notify_all()
        return released

    def _fetch_once(self, room: int, block: bool) -> int:
        """Lease up to `room` jobs; with none and `block`, wait in Redis for one. Returns how many."""
        got = 0
        next_due: float | None = None
        for q in self.queues:
            if room - got <= 0:
                break
            deliveries, due = self.broker.fetch(q, room - got, self.lease_ms, self.id,
                                                  int(self.app.dead_ttl * 1000))
            got += len(deliveries)
            if due is not None:
                next_due = due if next_due is None else min(next_due, due)
            for delivery in deliveries:
                with self._lock:
                    self._held[delivery.id] = delivery
                    if delivery.lost and self.concurrency > 1:
                        self._quarantine.append(delivery)  # its worker died running it: run it alone
                        continue
                    if self._executing >= self.concurrency or self._quarantine:
                        self._buffer.append(delivery)  # prefetched: runs when a slot frees
                        continue
                self._dispatch(delivery)
        if got or not block:
            return got
        if self.burst and self._drained(next_due):
            self._idle.set()
            self._stop.wait(0.05)
            return 0
        # idle: block in Redis until a wake-up token or the next due job; no fetch in between
        now = time.monotonic()
        due_at = None if next_due is None else now + next_due
        give_up = now + (0.05 if self.burst else SAFETY_FETCH)
        while not self._stop.is_set():
            now = time.monotonic()
            timeout = min(IDLE_BLOCK, give_up - now, IDLE_BLOCK if due_at is None else due_at - now + 0.001)
            if timeout <= 0 or self.broker.wait(self.queues, self.id, timeout):
                break
        return 0

    def _drained(self, next_due: float | None) -> bool:
        if next_due is not None:
            return False
        with self._lock:
            if self._executing or self._held:
                return False
        for q in self.queues:
            depth = self.broker.depths(q)  # fresh: a job that just failed may be scheduled by now
            if depth["ready"] or depth["running"] or depth["scheduled"]:
                return False
        return True

    def _dispatch(self, delivery: Delivery) -> None:
        with self._lock:
            self._held[delivery.id] = delivery
        try:
            message = unpack(delivery.body, self.app.max_message_bytes)
            task = self.app.get_task(message.task)
        except Exception as exc:  # anything undecodable is dead-lettered, never fatal to the worker
            if isinstance(exc, MessageInvalid):
                reason = str(exc)
            elif isinstance(exc, TaskNotFound):
                reason = f"unknown_task: {exc}"
            else:
                reason = f"decode_error: {type(exc).__name__}: {exc}"
            log.error("job dead", job_id=delivery.id, queue=delivery.queue, reason=reason)
            try:
                self._bury(delivery, reason, "")
                if self.metrics is not None:
                    self.metrics.bury(delivery.queue, message.task if isinstance(exc, TaskNotFound) else "", None)
            except BrokerError:
                # the lease lapses and the job comes back, to be dead-lettered then
                with self._lock:
                    self._held.pop(delivery.id, None)
                raise
            finally:
                with self._lock:
                    if self._alone == delivery.id:
                        self._alone = None
            return
        with self._lock:
            self._executing += 1
        if task.is_async and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._run_async(delivery, message, task), self._loop)
        else:
            self._work.put((delivery, message, task))

    # -- running ----------------------------------------------------------

    def _job_thread(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            delivery, message, task = item
            self._started(delivery, message, task)
            self._finish(delivery, message, execute.run_sync(task, message))

    async def _run_async(self, delivery: Delivery, message: Message, task: TaskBase[Any, Any]) -> None:
        self._started(delivery, message, task)
        self._finish(delivery, message, await execute.run_async(task, message))

    def _started(self, delivery: Delivery, message: Message, task: TaskBase[Any, Any]) -> None:
        if log_enabled(logging.DEBUG):
            log.debug("job started", job_id=delivery.id, task=message.task, queue=delivery.queue,
                      attempt=message.attempt)
        if self.kill_on_timeout and message.timeout is not None:
            with self._lock:
                # an async job is cancelled by its own loop at the limit; kill only if the loop is stuck
                slack = ASYNC_KILL_SLACK if task.is_async else 0.0
                self._timed[delivery.id] = (delivery, message, task, time.monotonic() + message.timeout + slack)

    def _finish(self, delivery: Delivery, message: Message, outcome: execute.Outcome) -> None:
        if self.kill_on_timeout and message.timeout is not None:
            with self._lock:
                if self._timed.pop(delivery.id, None) is None:
                    return  # the watchdog already failed it for its time limit
        self._finished.put(_Finished(delivery, message, outcome))
        with self._lock:
            if self._alone == delivery.id:
                self._alone = None
            self._executing -= 1
            self._lock.notify_all()

    # -- acknowledging ----------------------------------------------------

    def _ack_thread(self) -> None:
        while True:
            item = self._finished.get()
            batch: list[_Finished] = []
            linger_until = 0.0
            while item is not None:
                batch.append(item)
                if len(batch) >= ACK_BATCH:
                    break
                try:
                    item = self._finished.get_nowait()
                except queue_mod.Empty:
                    if not self._executing:
                        break
                    # jobs still running: wait a moment so one script call acks several
                    linger_until = linger_until or time.monotonic() + ACK_LINGER
                    left = linger_until - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = self._finished.get(timeout=left)
                    except queue_mod.Empty:
                        break
            if self.metrics is not None:
                self.metrics.in_flight.set(self._executing)
            while batch:
                try:
                    self._record(batch)
                    self._redis_back()
                    batch = [f for f in batch if not f.recorded]
                except BrokerError as exc:
                    batch = [f for f in batch if not f.recorded]
                    # outcomes stay in memory and are retried; leases fence a late ack
                    self._redis_down(exc)
            if item is None:
                return

    def _record(self, batch: list[_Finished]) -> None:
        by_queue: dict[str, list[_Finished]] = {}
        for f in (f for f in batch if not f.recorded):
            by_queue.setdefault(f.delivery.queue, []).append(f)
        for q, items in by_queue.items():
            wins = [f for f in items if isinstance(f.outcome, execute.Succeeded)]
            if wins:
                triples = [(f.delivery.id, f.delivery.token, f.outcome.result) for f in wins
                           if isinstance(f.outcome, execute.Succeeded)]
                lost = set(self.broker.ack(q, triples, self.app.result_ttl_ms))
                for f in wins:
                    self._log_outcome(f, lost_lease=f.delivery.id in lost)
                    self._recorded(f)
                    if self.metrics is not None and f.delivery.id not in lost:
                        self.metrics.succeed(q, f.message.task, f.outcome.duration)
            for f in items:
                if isinstance(f.outcome, execute.RetryLater):
                    self._retry(f.delivery, f.message, f.outcome)
                    self._recorded(f)
                    if self.metrics is not None:
                        self.metrics.retry(q, f.message.task, f.outcome.duration)
                elif isinstance(f.outcome, execute.Dead):
                    log.error("job dead", job_id=f.delivery.id, task=f.message.task, queue=q,
                              attempt=f.message.attempt, duration_ms=round(f.outcome.duration * 1000, 3),
                              reason=f.outcome.reason)
                    self._bury(f.delivery, f.outcome.reason, f.outcome.error)
                    self._recorded(f)
                    if self.metrics is not None:
                        self.metrics.bury(q, f.message.task, f.outcome.duration)

    def _recorded(self, f: _Finished) -> None:
        f.recorded = True
        with self._lock:
            self._held.pop(f.delivery.id, None)
            self.processed += 1
            self._lock.notify_all()

    def _log_outcome(self, f: _Finished, *, lost_lease: bool) -> None:
        if not lost_lease and not log_enabled(logging.INFO):
            return
        fields = {"job_id": f.delivery.id, "task": f.message.task, "queue": f.delivery.queue,
                  "attempt": f.message.attempt, "duration_ms": round(f.outcome.duration * 1000, 3)}
        if lost_lease:
            log.warning("lease lost, result discarded", **fields)
        else:
            log.info("job succeeded", **fields)

    def _retry(self, delivery: Delivery, message: Message, outcome: execute.RetryLater) -> None:
        nxt = message.next_attempt()
        body = pack(nxt, max(self.app.max_message_bytes, len(delivery.body) + 64))
        moved = self.broker.retry(delivery.queue, delivery.id, delivery.token, body, message.priority,
                                  int(outcome.delay * 1000), outcome.error,
                                  int(self.app.result_ttl * 1000))
        fields = {"job_id": delivery.id, "task": message.task, "queue": delivery.queue,
                  "attempt": message.attempt, "duration_ms": round(outcome.duration * 1000, 3)}
        if moved == 0:
            log.warning("lease lost, retry discarded", **fields)
        elif moved == 2:
            log.info("job cancelled", **fields)
        else:
            log.warning("job retrying", delay_s=round(outcome.delay, 3), error=outcome.summary, **fields)

    def _bury(self, delivery: Delivery, reason: str, error: str) -> None:
        buried = self.broker.bury(delivery.queue, delivery.id, delivery.token, reason, error,
                                  dead_ttl_ms=int(self.app.dead_ttl * 1000), dead_max=self.app.dead_max)
        if not buried:
            log.warning("lease lost, dead-letter discarded", job_id=delivery.id, queue=delivery.queue)
        with self._lock:
            self._held.pop(delivery.id, None)
            self._lock.notify_all()

    # -- leases -----------------------------------------------------------

    def _heartbeat_thread(self) -> None:
        interval = max(0.05, self.app.lease / 3)
        while True:
            if self._stop.is_set():
                time.sleep(interval)  # keep renewing through the grace period
            else:
                self._stop.wait(interval)
            if self._stop.is_set() and not self._held:
                return
            if self.metrics is not None:
                self.metrics.in_flight.set(self._executing)
            try:
                self._renew_and_recover()
                self._redis_back()
            except BrokerError as exc:
                self._redis_down(exc)

    @property
    def _heartbeat_ttl_ms(self) -> int:
        """How long this worker counts as live after a heartbeat: three heartbeat intervals."""
        return max(1000, int(self.app.lease * 1000))

    def _renew_and_recover(self) -> None:
        with self._lock:
            held = list(self._held.values())
        for q in self.queues:
            pairs = [(d.id, d.token) for d in held if d.queue == q]
            if pairs:
                for job_id in self.broker.renew(q, pairs, self.lease_ms):
                    log.warning("lease lost", job_id=job_id, queue=q)
            requeued, dead = self.broker.recover(q, self.app.max_lost, int(self.app.dead_ttl * 1000))
            if requeued or dead:
                log.warning("recovered expired leases", queue=q, requeued=requeued, dead=dead)
        self._info["processed"] = self.processed  # all of it each time: a lapsed record comes back whole
        self.broker.heartbeat(self.id, self._heartbeat_ttl_ms, self._info)

    # -- watchdog (time limits, memory, supervisor) ------------------------

    def _watchdog_thread(self) -> None:
        next_memory_check = 0.0
        while not self._stop.wait(WATCHDOG_TICK):
            now = time.monotonic()
            if self.kill_on_timeout:
                with self._lock:
                    over = [entry for entry in self._timed.values() if entry[3] <= now]
                    for entry in over:
                        del self._timed[entry[0].id]
                if over:
                    self._exit_for_time_limit(over)
            if self.parent_pid and os.getppid() != self.parent_pid:
                log.warning("supervisor gone, stopping", worker=self.id, supervisor_pid=self.parent_pid)
                self._stop.set()
            if self.max_memory_mb and now >= next_memory_check:
                next_memory_check = now + 1.0
                rss = resident_mb()
                if rss > self.max_memory_mb:
                    log.info("memory limit reached, recycling", worker=self.id, rss_mb=round(rss, 1),
                             max_memory_mb=self.max_memory_mb)
                    self._stop.set()

    def _exit_for_time_limit(self, over: list[tuple[Delivery, Message, TaskBase[Any, Any], float]]) -> None:
        """Fail the overrunning jobs, record what already finished, give back the rest, exit.

        A thread cannot be stopped, so the process goes; its supervisor starts a new one.
        """
        self._stop.set()
        failed = []
        for delivery, message, task, deadline in over:
            took = time.monotonic() - deadline + (message.timeout or 0.0) + (ASYNC_KILL_SLACK if task.is_async else 0.0)
            exc = TimeLimitExceeded(f"time limit exceeded: killed after {took:.1f}s (timeout {message.timeout}s)")
            log.error("time limit exceeded, killing this worker process", job_id=delivery.id,
                      task=message.task, queue=delivery.queue, attempt=message.attempt,
                      timeout_s=message.timeout)
            failed.append(_Finished(delivery, message, execute.failed(task, message, exc, took)))
        try:
            while failed:
                try:
                    self._record(failed)
                    failed = [f for f in failed if not f.recorded]
                except BrokerError as exc:  # keep trying: the lease fences a late outcome
                    failed = [f for f in failed if not f.recorded]
                    self._redis_down(exc)
                    if self._redis_down_since and time.monotonic() - self._redis_down_since > self.app.lease:
                        break
            self._finished.put(None)  # the ack thread records what had finished, then returns
            for thread in self._threads:
                if thread.name == "taskq-ack":
                    thread.join(timeout=self.app.lease)
            with self._lock:
                rest = dict(self._held)
            for q in self.queues:
                pairs = [(d.id, d.token) for d in rest.values() if d.queue == q]
                if pairs:
                    self._safely(functools.partial(self.broker.release, q, pairs))
            self._safely(lambda: self.broker.heartbeat(self.id, 0))  # no longer live
            log.info("worker stopped", worker=self.id, processed=self.processed, given_back=len(rest),
                     given_back_ids=sorted(rest)[:20], exit_code=EXIT_TIME_LIMIT)
        finally:
            os._exit(EXIT_TIME_LIMIT)

    # -- Redis outages ----------------------------------------------------

    def _redis_down(self, exc: BrokerError) -> None:
        with self._lock:
            first = self._redis_down_since is None
            if first:
                self._redis_down_since = time.monotonic()
            down_for = time.monotonic() - (self._redis_down_since or 0)
        if first and isinstance(exc, BrokerUnavailable):
            log.error("redis unreachable", error=str(exc))
        elif first:
            log.error("redis error", error=str(exc))
        pause = min(RECONNECT_MAX, 0.1 + down_for / 2)
        if self._stop.is_set():
            time.sleep(min(pause, 0.5))  # still flushing outcomes after a stop
        else:
            self._stop.wait(pause)

    def _redis_back(self) -> None:
        if self._redis_down_since is None:
            return
        with self._lock:
            since, self._redis_down_since = self._redis_down_since, None
        if since is not None:
            log.info("redis back", after_s=round(time.monotonic() - since, 1))
