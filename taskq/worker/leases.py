"""Leases: the deliveries a worker holds, by lease token, renewed every lease/3 until settled.

Keyed by delivery (queue, job id, token), not job id: a worker that gets a job again under a new
token (after its stale outcome was refused) keeps renewing the new lease. A renewal reports a lease lost only if the
delivery is still held and its outcome is not on its way to Redis (a renewal that races the
settle call of a finished job is no loss).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from taskq.broker.base import Consumer, Delivery, Registry
from taskq.errors import BrokerError
from taskq.log import get_logger
from taskq.message import Message
from taskq.outage import Outage
from taskq.worker.joblogs import JobLogs

log = get_logger("taskq.worker")


class LeaseBroker(Consumer, Registry, Protocol):
    """What the lease keeper needs of a broker."""


class Leases:
    def __init__(self, broker: LeaseBroker, queues: Sequence[str], worker_id: str, *, lease: float,
                 outage: Outage, on_lost: Callable[[list[Delivery]], None],
                 on_abort: Callable[[list[Delivery]], None] = lambda d: None,
                 sweep: Callable[[], object] = lambda: None, logs: JobLogs | None = None) -> None:
        self.broker = broker
        #: the running jobs' log lines: sent each round, and with a job's progress report
        self.logs = logs
        #: called after each recovery (the workflow outboxes' sweep: taskq/worker/continuer.py)
        self.sweep = sweep
        self.queues = list(queues)
        self.worker_id = worker_id
        self.lease = lease
        self.outage = outage
        self.on_lost = on_lost
        self.on_abort = on_abort
        # single dict and set operations are atomic under the GIL: the hot path takes no lock
        self._held: dict[tuple[str, str, str], Delivery] = {}
        #: tokens whose outcome is produced: no longer renewed (the settle call ends the lease)
        self._settling: set[tuple[str, str, str]] = set()

    # -- the held set -----------------------------------------------------

    def add(self, delivery: Delivery) -> None:
        self._held[delivery.key] = delivery

    def settling(self, delivery: Delivery) -> None:
        self._settling.add(delivery.key)

    @property
    def unsettled(self) -> int:
        """Jobs whose body has ended but whose outcome Redis does not have yet."""
        return len(self._settling)

    def drop(self, deliveries: Sequence[Delivery]) -> None:
        held, settling = self._held, self._settling
        for d in deliveries:
            key = d.key
            held.pop(key, None)
            settling.discard(key)

    def snapshot(self) -> list[Delivery]:
        return list(self._held.values())

    def unfinished(self) -> list[Delivery]:
        """Held jobs whose body has not ended (not started yet, or running)."""
        settling = self._settling
        return [d for key, d in list(self._held.items()) if key not in settling]

    def __len__(self) -> int:
        return len(self._held)

    def give_back(self, deliveries: list[Delivery], *, ran: bool = False) -> int:
        """Release jobs this worker holds but will not run (no attempt, no blame); returns how many
        went back. `ran`: their bodies may have started (interrupted): at_most_once ones are
        dead-lettered instead."""
        released = 0
        for q in {d.queue for d in deliveries}:
            try:
                released += self.broker.release(q, [(d.id, d.token) for d in deliveries if d.queue == q], ran=ran)
            except BrokerError as exc:  # their leases lapse instead, and they come back unblamed
                log.warning("could not give jobs back", queue=q, error=str(exc))
        self.drop(deliveries)
        return released

    def report_progress(self, message: Message, fraction: float, text: str) -> None:
        """Store a running job's progress under its lease token (current_job().progress)."""
        delivery = self.find(message.queue, message.id)
        if delivery is None:
            return
        lines = self.logs.take(delivery.queue, delivery.id) if self.logs is not None else []
        try:
            if not self.broker.progress(delivery.queue, delivery.id, delivery.token, fraction, text, lines):
                log.warning("lease lost, progress discarded", job_id=delivery.id, queue=delivery.queue)
        except BrokerError as exc:
            log.warning("progress not stored", job_id=delivery.id, queue=delivery.queue, error=str(exc))

    def find(self, queue: str, job_id: str) -> Delivery | None:
        """The running delivery of a job (for its progress reports)."""
        for d in list(self._held.values()):
            if d.id == job_id and d.queue == queue and d.running and d.key not in self._settling:
                return d
        return None

    def wait_empty(self, deadline: float, busy: Callable[[], bool]) -> None:
        """Block until nothing is held and nothing runs, or the monotonic deadline passes."""
        while (self._held or busy()) and time.monotonic() < deadline:
            time.sleep(0.02)  # shutdown only

    # -- renewing ---------------------------------------------------------

    def renew(self) -> None:
        """Extend every held lease; drop (and report) the ones that were really lost."""
        renewing = [d for d in list(self._held.values()) if d.key not in self._settling]
        lost: list[Delivery] = []
        aborted: list[Delivery] = []
        for q in self.queues:
            mine = [d for d in renewing if d.queue == q]
            if not mine:
                continue
            sent = time.monotonic()
            gone_pairs, abort_pairs = self.broker.renew_leases(q, [(d.id, d.token) for d in mine])
            gone, asked = set(gone_pairs), set(abort_pairs)
            aborted += [d for d in mine if (d.id, d.token) in asked]
            for d in mine:
                if (d.id, d.token) not in gone:
                    d.deadline = sent + self.lease
                elif d.key not in self._settling and self._held.pop(d.key, None) is not None:
                    lost.append(d)  # still held, and no outcome on its way: really lost
        if lost:
            for d in lost:
                if d.running:
                    log.warning("lease lost", job_id=d.id, queue=d.queue, running=True, token=d.token)
                else:  # prefetched, never started: cancelled or moved (job.reschedule) meanwhile, or recovered
                    log.info("prefetched job taken back, dropped", job_id=d.id, queue=d.queue, token=d.token)
            self.on_lost(lost)
        if aborted:
            self.on_abort(aborted)

    def _wait(self, stop: threading.Event, interval: float) -> None:
        """Until the next renewal: blocked in Redis, so job.abort() (or the worker's stop) ends
        the wait at once; through an outage, a plain sleep."""
        deadline = time.monotonic() + interval
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            try:
                if self.broker.wait_abort(self.worker_id, left):
                    return
            except BrokerError:
                stop.wait(left)
                return

    def recover(self) -> None:
        """Requeue the jobs of workers that died (their leases lapsed)."""
        for q in self.queues:
            got = self.broker.recover(q)
            if got.requeued or got.dead:
                log.warning("recovered expired leases", queue=q, requeued=got.requeued, dead=got.dead)

    def run(self, stop: threading.Event, heartbeat: Callable[[], None]) -> None:
        """The lease keeper's thread: renew, recover and heartbeat every lease/3, also through a
        graceful stop while jobs still run; returns once stopped with nothing held."""
        interval = max(0.05, self.lease / 3)
        while True:
            if stop.is_set():
                time.sleep(interval)  # keep renewing through the grace period
            else:
                self._wait(stop, interval)
            if stop.is_set() and not self._held:
                return
            try:
                if self.logs is not None:
                    self.logs.flush()
                self.renew()
                self.recover()
                self.sweep()
                heartbeat()
                self.outage.ok("leases")
            except BrokerError as exc:
                self.outage.failed("leases", exc)
