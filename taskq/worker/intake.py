"""Intake: what a worker starts and leases next. A plain object; `step()` is one round.

Leased jobs are either *running* (their body starts now, or within about one fetch: see
arming) or *reserved* (prefetched into the buffer). A reserved job starts only through a fetch
that names it, which Redis refuses if the job was cancelled or its lease was lost meanwhile: a
zombie (a worker stopped past its lease) never starts its stale buffer, and a cancelled
reserved job never starts.

Arming: when jobs end faster than a fetch takes, a fetch per freed slot would leave slots idle
for a round trip each time. So the intake keeps about as many jobs *armed* (leased as running,
waiting for a slot) as it expects to end during one fetch, and a freed slot starts one at once,
with no round trip. For jobs slower than a fetch nothing is armed, and a job's status turns
running when its body starts; for fast ones it may turn running about one fetch early.

Suspects (jobs whose worker died while running them at least SUSPECT_LOST times) run alone, so
if one kills the process nothing else is blamed; a job that lost its worker once (a crash, an
outage) runs at full concurrency like any other.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from taskq.broker.base import Consumer, Delivery, Inspector, Refill, TaskLimit

#: a job whose worker died this many times while running it is a suspect: it runs alone
SUSPECT_LOST = 2
#: longest single blocking wait in Redis, in seconds (bounds shutdown and schedule drift)
IDLE_BLOCK = 5.0
#: an idle worker fetches at least this often (seconds) even without a wake-up token
SAFETY_FETCH = 60.0
#: weight of the newest measurement in the moving averages of end rate and fetch latency
SMOOTHING = 0.2


class IntakeBroker(Consumer, Inspector, Protocol):
    """What the intake needs of a broker."""


@dataclasses.dataclass(slots=True)
class Step:
    """What one round decided: jobs to run now, jobs to give back (unstarted), and whether the
    worker has nothing to do until Redis wakes it (`idle`, with the next due time if known)."""

    run: list[Delivery] = dataclasses.field(default_factory=list)
    give_back: list[Delivery] = dataclasses.field(default_factory=list)
    #: reserved jobs this worker lets go without a call: their lease may have lapsed (recovered by
    #: Redis, unblamed), or Redis refused to start them (cancelled, or leased to another worker)
    dropped: list[Delivery] = dataclasses.field(default_factory=list)
    idle: bool = False
    next_due: float | None = None
    #: nothing can happen until a running job ends: wait for a slot, not for Redis
    wait_slot: bool = False


class Intake:
    """The buffer of reserved jobs, the suspects, and the count of running bodies.

    Args:
        broker: where jobs are leased from.
        queues: queues to take jobs from, in order.
        worker_id: the id leases are taken under.
        concurrency: bodies run at once.
        prefetch: reserved jobs kept ahead of free slots.
        lease: seconds a lease lasts; a job is started only with at least a third of it left.
        on_lease: called with every new delivery (the worker starts renewing its lease).
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(self, broker: IntakeBroker, queues: Sequence[str], worker_id: str, *, concurrency: int,
                 prefetch: int, lease: float, on_lease: Callable[[Delivery], None] = lambda d: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.lease = lease
        self.on_lease = on_lease
        self.clock = clock
        self.cond = threading.Condition()
        #: reserved jobs waiting for a free slot, oldest first
        self.buffer: collections.deque[Delivery] = collections.deque()
        #: jobs leased as running ahead of a free slot (see arming), oldest first
        self.armed: collections.deque[Delivery] = collections.deque()
        #: reserved suspects waiting to run alone
        self.suspects: collections.deque[Delivery] = collections.deque()
        #: the suspect running now (nothing else starts meanwhile)
        self.alone: Delivery | None = None
        self.executing = 0
        #: the last fetch found nothing: with no free slot, wait for one rather than fetch again
        self.queue_empty = False
        #: bodies this worker may still start (max_jobs), or None for no limit
        self.budget: int | None = None
        #: queue -> (n, window ms): its global rate limit (app.queue(rate_limit=))
        self.rates: dict[str, tuple[int, int]] = {}
        #: queue -> most of its jobs leased at once across every worker (app.queue(max_running=))
        self.caps: dict[str, int] = {}
        #: the limits of the tasks that have their own (@app.task(rate_limit=, max_running=))
        self.limits: list[TaskLimit] = []
        #: queues whose last fetch a concurrency cap cut: while this worker's own outcomes are on
        #: their way to Redis (they free cap slots), it waits for them rather than fetch in vain
        self.capped: set[str] = set()
        #: shutting down: no more leases are taken in (unstarted() was called)
        self.closed = False
        #: blocked in Redis in idle_wait(): a settle's leases must wake it (Worker._refilled)
        self.idling = False
        #: outcomes not yet recorded in Redis: a suspect waits for them (were it to kill the process,
        #: their jobs would be blamed with it)
        self.unsettled: Callable[[], int] = lambda: 0
        #: queues whose wake-up token the last idle wait took: fetched first
        self.woken: list[str] = []
        #: where the next fetch round starts: the queues are served in turn, none has precedence
        self._turn = 0
        #: moving averages: bodies ended per second, and seconds one fetch takes
        self.rate = 0.0
        self.latency = 0.0
        self._ended = 0
        self._measured = clock()

    # -- called by the job threads and the lease keeper -------------------

    def ended(self, delivery: Delivery) -> None:
        """A body has returned (or was failed by the watchdog): its slot is free."""
        with self.cond:
            self.executing -= 1
            self._ended += 1
            if self.alone is delivery:
                self.alone = None
            self.cond.notify()  # the intake thread is the one waiter

    def forget(self, keys: set[tuple[str, str, str]]) -> list[Delivery]:
        """Drop unstarted jobs whose lease was lost (recovered while this worker was stopped or
        cut off), by Delivery.key; returns the ones dropped."""
        with self.cond:
            dropped = [d for d in (*self.armed, *self.buffer, *self.suspects) if d.key in keys]
            if dropped:
                self.armed = collections.deque(d for d in self.armed if d.key not in keys)
                self.buffer = collections.deque(d for d in self.buffer if d.key not in keys)
                self.suspects = collections.deque(d for d in self.suspects if d.key not in keys)
        return dropped

    def refill(self, queue: str, freed: int) -> Refill | None:
        """What a settle of `freed` outcomes of `queue` may lease for the slots they free: only
        while a cap holds the queue (else arming keeps slots busy), and not near the end."""
        if queue not in self.capped or self.closed or self.budget is not None:
            return None
        return Refill(self.worker_id, freed, self._suspect_lost, self.rates.get(queue), self.caps.get(queue, 0),
                      self.limits)

    def accept(self, leased: list[Delivery], sent: float) -> list[Delivery]:
        """Jobs a settle leased for the freed slots: armed (or reserved), like a fetch's. Returns
        them instead if the intake has closed (the caller gives them back)."""
        with self.cond:
            if self.closed:
                return leased
            for d in leased:
                d.deadline = sent + self.lease
            self._keep(leased, None)
            self.queue_empty = False
            self.cond.notify()
        return []

    def _keep(self, leased: list[Delivery], out: Step | None) -> None:
        """New leases: the running ones start now in `out` while slots are free (None: armed),
        the reserved ones wait in the buffer (or with the suspects)."""
        for d in leased:
            self.on_lease(d)
            if not d.running:
                (self.suspects if self.concurrency > 1 and d.lost >= SUSPECT_LOST else self.buffer).append(d)
            elif out is not None and self.executing < self.concurrency:
                self.executing += 1
                out.run.append(d)
            else:
                self.armed.append(d)

    @property
    def _all_capped(self) -> bool:
        """Every queue's last fetch was cut by a cap (what this worker leases more waits for slots)."""
        return len(self.capped) == len(self.queues)

    @property
    def _suspect_lost(self) -> int:
        return SUSPECT_LOST if self.concurrency > 1 else 1 << 30

    def unstarted(self) -> list[Delivery]:
        """Take every armed and reserved job out (shutdown gives them back); later leases from
        a settle are refused (accept returns them)."""
        with self.cond:
            self.closed = True
            out = [*self.armed, *self.buffer, *self.suspects]
            self.armed.clear()
            self.buffer.clear()
            self.suspects.clear()
            return out

    @property
    def ahead(self) -> int:
        """Jobs to keep armed: about the number expected to end during one fetch (none while
        recycling after max_jobs, or for jobs slower than a fetch)."""
        if self.budget is not None:
            return 0
        expected = 2 * self.rate * self.latency  # twice: rate and latency both vary
        return 0 if expected < 0.5 else min(self.concurrency, math.ceil(expected))

    def _measure(self, now: float) -> None:
        elapsed = now - self._measured
        if elapsed >= 0.005:  # sub-ms windows say little about a rate
            self.rate += SMOOTHING * (self._ended / elapsed - self.rate)
            self._ended, self._measured = 0, now

    def wait_for_work(self, stop: threading.Event, timeout: float = 1.0) -> None:
        """Block while nothing can start: a suspect runs, a suspect waits for the others to end,
        or every slot is busy and the buffer is full (or the queues were empty)."""
        with self.cond:
            while not stop.is_set() and self._blocked():
                self.cond.wait(timeout)

    def _blocked(self) -> bool:
        if self.alone is not None or (self.suspects and (self.executing or self.unsettled())):
            return True
        if self._all_capped and self.unsettled() and not (self.armed or self.buffer):
            return True  # the outcomes on their way free cap slots, and their settle fills them
        if self.executing < self.concurrency:
            return False
        return self.queue_empty or (len(self.buffer) >= self.prefetch and len(self.armed) >= self.ahead)

    # -- one round ---------------------------------------------------------

    def step(self) -> Step:
        """Decide what to start and lease, make the fetch calls, and return what to run now."""
        out = Step()
        now = self.clock()
        suspect: Delivery | None = None
        with self.cond:
            self._measure(now)
            if self._blocked():
                out.wait_slot = True
                return out
            start: list[Delivery] = []
            if self.suspects:  # nothing is executing here: the suspect runs alone
                suspect = self.suspects.popleft()
                start.append(suspect)
                out.give_back = [*self.armed, *self.buffer]  # others run elsewhere meanwhile, unblamed
                self.armed.clear()
                self.buffer.clear()
                run = reserve = 0
            else:
                free = self.concurrency - self.executing
                if self.budget is not None:
                    free = min(free, self.budget)
                while self.armed and len(out.run) < free:  # no round trip: they are running already
                    d = self.armed.popleft()
                    # a lease that may have lapsed: recovery requeues the job
                    (out.run if self._fresh(d, now) else out.give_back).append(d)
                if out.run or out.give_back:
                    self.executing += len(out.run)
                    self._spend(len(out.run))
                    return out  # start these now; the next step refills
                while self.buffer and len(start) < free:
                    d = self.buffer.popleft()
                    # a lease that may have lapsed: recovery requeues the job (never started: no blame)
                    (start if self._fresh(d, now) else out.dropped).append(d)
                run = free - len(start) + max(0, self.ahead - len(self.armed))
                reserve = max(0, self.prefetch - len(self.buffer))
                if self._all_capped:  # a cap cuts leases ahead: ask for free slots only
                    run, reserve = free - len(start), 0
                if self.budget is not None:  # no prefetch past the last job this worker will run
                    run = min(run, self.budget - len(start))
                    reserve = min(reserve, max(0, self.budget - free - len(self.buffer)))
            self.executing += len(start)  # counted now, so a concurrent ended() cannot undercount
        sent = self.clock()
        try:
            leased, started, next_due = self._fetch(run, reserve, start)
        except BaseException:
            with self.cond:  # as it was: try again later
                self.executing -= len(start)
                if suspect is not None:
                    self.suspects.appendleft(suspect)
                    self.buffer.extend(out.give_back)
                    out.give_back = []
                else:
                    self.buffer.extendleft(reversed(start))
            raise
        with self.cond:
            self.latency += SMOOTHING * (self.clock() - sent - self.latency)
            self.executing -= len(start) - len(started)
            ok = {id(d) for d in started}
            out.dropped += [d for d in start if id(d) not in ok]  # refused: cancelled, or lease lost
            if suspect is not None and started:
                self.alone = suspect
            for d in started:
                d.running = True
            out.run.extend(started)
            self._keep(leased, out)
            self.queue_empty = not leased and not started
            out.idle = self.queue_empty and not (self.buffer or self.suspects or self.armed or out.give_back)
            out.next_due = next_due
            self._spend(len(out.run))
            self.cond.notify_all()
        return out

    def _spend(self, started: int) -> None:
        if self.budget is not None:
            self.budget -= started

    def _fresh(self, d: Delivery, now: float) -> bool:
        """Whether an armed or reserved job's lease surely holds long enough to start it."""
        return now < d.deadline - self.lease / 3

    def _fetch(self, run: int, reserve: int,
               start: list[Delivery]) -> tuple[list[Delivery], list[Delivery], float | None]:
        """One fetch per queue that has jobs to start or room left; returns (leased, started,
        seconds until the next scheduled job)."""
        leased: list[Delivery] = []
        started: list[Delivery] = []
        next_due: float | None = None
        for q in self._order():
            pairs = [d for d in start if d.queue == q]
            if not pairs and (run + reserve <= 0 or leased):
                continue  # jobs in hand start now: the next round goes on to the other queues
            sent = self.clock()
            reply = self.broker.fetch(q, run, reserve, self.worker_id, [(d.id, d.token) for d in pairs],
                                      suspect_lost=self._suspect_lost,
                                      rate=self.rates.get(q), max_running=self.caps.get(q, 0),
                                      limits=self.limits)
            started += [d for d, ok in zip(pairs, reply.started, strict=True) if ok]
            for d in reply.deliveries:
                d.deadline = sent + self.lease
                if d.running:
                    run -= 1
                else:
                    reserve -= 1
            leased += reply.deliveries
            if reply.capped:
                self.capped.add(q)
            else:
                self.capped.discard(q)
            if reply.next_due is not None:
                next_due = reply.next_due if next_due is None else min(next_due, reply.next_due)
        return leased, started, next_due

    def _order(self) -> list[str]:
        """This round's queue order: the woken ones first, then the rest in turn (one step along
        each round, so with every queue busy each gets its share of the free slots)."""
        qs = self.queues
        if len(qs) == 1:
            return qs
        k = self._turn % len(qs)
        self._turn += 1
        order = qs[k:] + qs[:k]
        with self.cond:
            woken, self.woken = self.woken, []
        if woken:
            order = [q for q in woken if q in qs] + [q for q in order if q not in woken]
        return order

    def idle_wait(self, stop: threading.Event, next_due: float | None, *, burst: bool = False) -> None:
        """Nothing to do: block in Redis until a wake-up token, the next due job, or SAFETY_FETCH."""
        start = self.clock()
        due_at = None if next_due is None else start + next_due
        give_up = start + (0.05 if burst else SAFETY_FETCH)
        with self.cond:
            self.idling = True
        while not stop.is_set():
            with self.cond:
                if self.armed or self.buffer:  # a settle leased jobs meanwhile (accept)
                    break
            now = self.clock()
            timeout = min(IDLE_BLOCK, give_up - now, IDLE_BLOCK if due_at is None else due_at - now + 0.001)
            if timeout <= 0:
                break
            woken = self.broker.wait(self.queues, self.worker_id, timeout)
            if woken is not None:
                with self.cond:  # new work: worth a fetch even with every slot busy (to prefetch it)
                    self.queue_empty = False
                    self.woken = woken
                break
        with self.cond:
            self.idling = False
            if due_at is not None and self.clock() >= due_at:
                self.queue_empty = False
