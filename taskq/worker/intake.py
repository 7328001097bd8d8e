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
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from taskq.broker.base import Consumer, Delivery, Inspector, Refill
from taskq.worker.rounds import IntakeLimits, Pace, Plan, Step

#: a job whose worker died this many times while running it is a suspect: it runs alone
SUSPECT_LOST = 2
#: longest single blocking wait in Redis, in seconds (bounds shutdown and schedule drift)
IDLE_BLOCK = 5.0
#: an idle worker fetches at least this often (seconds) even without a wake-up token
SAFETY_FETCH = 60.0


class IntakeBroker(Consumer, Inspector, Protocol):
    """What the intake needs of a broker."""


class Intake:
    """The buffer of reserved jobs, the suspects, and the count of running bodies.

    Args:
        broker: where jobs are leased from.
        queues: queues to take jobs from, in order.
        worker_id: the id leases are taken under.
        concurrency: bodies run at once.
        prefetch: reserved jobs kept ahead of free slots.
        lease: seconds a lease lasts; a job is started only with at least a third of it left.
        limits: the budget and the rate limits and caps fetches pass to Redis.
        unsettled: how many ended bodies' outcomes Redis does not have yet (a suspect waits for
            them: were it to kill the process, their jobs would be blamed with it).
        on_lease: called with every new delivery (the worker starts renewing its lease).
        clock: monotonic seconds (tests pass a fake one).
    The worker reads `running`, `idle`, `capped`, `spent` and `idling`, and wakes the intake
    thread only through ended(), recorded(), accept() and close().
    """

    def __init__(self, broker: IntakeBroker, queues: Sequence[str], worker_id: str, *, concurrency: int,
                 prefetch: int, lease: float, limits: IntakeLimits | None = None,
                 unsettled: Callable[[], int] = lambda: 0, on_lease: Callable[[Delivery], None] = lambda d: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.broker = broker
        self.queues = list(queues)
        self.worker_id = worker_id
        self.concurrency = concurrency
        self.prefetch = prefetch
        self.lease = lease
        self.limits = limits or IntakeLimits()
        self.unsettled = unsettled
        self.on_lease = on_lease
        self.clock = clock
        self._cond = threading.Condition()
        #: reserved jobs waiting for a free slot, oldest first
        self.buffer: collections.deque[Delivery] = collections.deque()
        #: jobs leased as running ahead of a free slot (see arming), oldest first
        self.armed: collections.deque[Delivery] = collections.deque()
        #: reserved suspects waiting to run alone
        self.suspects: collections.deque[Delivery] = collections.deque()
        #: the suspect running now (nothing else starts meanwhile)
        self.alone: Delivery | None = None
        self._executing = 0
        #: bodies this worker may still start (limits.budget counted down), or None for no limit
        self._budget = self.limits.budget
        #: the last fetch found nothing: with no free slot, wait for one rather than fetch again
        self._queue_empty = False
        #: queues whose last fetch a concurrency cap cut: while this worker's own outcomes are on
        #: their way to Redis (they free cap slots), it waits for them rather than fetch in vain
        self._capped: set[str] = set()
        #: shutting down: no more leases are taken in (close() or unstarted() was called)
        self._closed = False
        #: blocked in Redis in idle_wait(): a settle's leases must wake it (Worker._refilled)
        self._idling = False
        #: queues whose wake-up token the last idle wait took: fetched first
        self.woken: list[str] = []
        #: where the next fetch round starts: the queues are served in turn, none has precedence
        self._turn = 0
        self.pace = Pace(clock())

    # -- what the worker reads ----------------------------------------------

    @property
    def running(self) -> int:
        """Bodies running now (or about to start: counted when handed out)."""
        return self._executing

    @property
    def idle(self) -> bool:
        """No body runs and the last fetch found nothing."""
        return not self._executing and self._queue_empty

    @property
    def capped(self) -> bool:
        """Some queue's last fetch was cut by a concurrency cap (a settle there refills the slots it frees)."""
        return bool(self._capped)

    @property
    def spent(self) -> bool:
        """The budget (max_jobs) is used up: nothing more starts here."""
        return self._budget == 0

    @property
    def idling(self) -> bool:
        """Blocked in Redis in idle_wait(): jobs a settle leased must wake it (broker.wake)."""
        return self._idling

    # -- called by the job threads, the settler and the lease keeper --------

    def ended(self, delivery: Delivery) -> None:
        """A body has returned (or was failed by the watchdog): its slot is free."""
        with self._cond:
            self._executing -= 1
            self.pace.ended += 1
            if self.alone is delivery:
                self.alone = None
            self._cond.notify()  # the intake thread is the one waiter

    def recorded(self) -> None:
        """Outcomes reached Redis: a suspect, or a fetch a cap cut, may have waited for them."""
        if self.suspects or self._capped:
            with self._cond:
                self._cond.notify()

    def close(self) -> None:
        """Shutting down (the worker's stop event is set): take no more leases in, and wake the
        intake thread from any wait for a slot."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def forget(self, keys: set[tuple[str, str, str]]) -> list[Delivery]:
        """Drop unstarted jobs whose lease was lost (recovered while this worker was stopped or
        cut off), by Delivery.key; returns the ones dropped."""
        with self._cond:
            dropped = [d for d in (*self.armed, *self.buffer, *self.suspects) if d.key in keys]
            if dropped:
                self.armed = collections.deque(d for d in self.armed if d.key not in keys)
                self.buffer = collections.deque(d for d in self.buffer if d.key not in keys)
                self.suspects = collections.deque(d for d in self.suspects if d.key not in keys)
        return dropped

    def refill(self, queue: str, freed: int) -> Refill | None:
        """What a settle of `freed` outcomes of `queue` may lease for the slots they free: only
        while a cap holds the queue (else arming keeps slots busy), and not near the end."""
        if queue not in self._capped or self._closed or self._budget is not None:
            return None
        limits = self.limits
        return Refill(self.worker_id, freed, self._suspect_lost, limits.rates.get(queue), limits.caps.get(queue, 0),
                      limits.tasks)

    def accept(self, leased: list[Delivery], sent: float) -> list[Delivery]:
        """Jobs a settle leased for the freed slots: armed (or reserved), like a fetch's. Returns
        them instead if the intake has closed (the caller gives them back)."""
        with self._cond:
            if self._closed:
                return leased
            for d in leased:
                d.deadline = sent + self.lease
            self._keep(leased, None)
            self._queue_empty = False
            self._cond.notify()
        return []

    def _keep(self, leased: list[Delivery], out: Step | None) -> None:
        """New leases: the running ones start now in `out` while slots are free (None: armed),
        the reserved ones wait in the buffer (or with the suspects)."""
        for d in leased:
            self.on_lease(d)
            if not d.running:
                (self.suspects if self.concurrency > 1 and d.lost >= SUSPECT_LOST else self.buffer).append(d)
            elif out is not None and self._executing < self.concurrency:
                self._executing += 1
                out.run.append(d)
            else:
                self.armed.append(d)

    @property
    def _all_capped(self) -> bool:
        """Every queue's last fetch was cut by a cap (what this worker leases more waits for slots)."""
        return len(self._capped) == len(self.queues)

    @property
    def _suspect_lost(self) -> int:
        return SUSPECT_LOST if self.concurrency > 1 else 1 << 30

    def unstarted(self) -> list[Delivery]:
        """Take every armed and reserved job out (shutdown gives them back); later leases from
        a settle are refused (accept returns them)."""
        with self._cond:
            self._closed = True
            out = [*self.armed, *self.buffer, *self.suspects]
            self.armed.clear()
            self.buffer.clear()
            self.suspects.clear()
            return out

    @property
    def ahead(self) -> int:
        """Jobs to keep armed (none while recycling after max_jobs)."""
        return 0 if self._budget is not None else self.pace.ahead(self.concurrency)

    def wait_for_work(self, stop: threading.Event, timeout: float = 1.0) -> None:
        """Block while nothing can start: a suspect runs, a suspect waits for the others to end,
        or every slot is busy and the buffer is full (or the queues were empty)."""
        with self._cond:
            while not stop.is_set() and self._blocked():
                self._cond.wait(timeout)

    def _blocked(self) -> bool:
        if self.alone is not None or (self.suspects and (self._executing or self.unsettled())):
            return True
        if self._all_capped and self.unsettled() and not (self.armed or self.buffer):
            return True  # the outcomes on their way free cap slots, and their settle fills them
        if self._executing < self.concurrency:
            return False
        return self._queue_empty or (len(self.buffer) >= self.prefetch and len(self.armed) >= self.ahead)

    # -- one round: plan (locked), fetch (unlocked), absorb (locked) ---------

    def step(self) -> Step:
        """Decide what to start and lease, make the fetch calls, and return what to run now."""
        now = self.clock()
        with self._cond:
            plan = self._plan(now)
        if isinstance(plan, Step):
            return plan
        sent = self.clock()
        try:
            fetched = self._fetch(plan.run, plan.reserve, plan.start)
        except BaseException:
            with self._cond:
                self._undo(plan)
            raise
        with self._cond:
            return self._absorb(plan, *fetched, sent=sent)

    def _plan(self, now: float) -> Plan | Step:
        """What this round starts and leases; a Step when no fetch is needed (nothing can start,
        or armed jobs start now without a round trip)."""
        self.pace.measure(now)
        if self._blocked():
            return Step(wait_slot=True)
        if self.suspects:  # nothing is executing here: the suspect runs alone
            return self._plan_alone()
        out = Step()
        free = self.concurrency - self._executing
        if self._budget is not None:
            free = min(free, self._budget)
        while self.armed and len(out.run) < free:  # no round trip: they are running already
            d = self.armed.popleft()
            # a lease that may have lapsed: recovery requeues the job
            (out.run if self._fresh(d, now) else out.give_back).append(d)
        if out.run or out.give_back:
            self._executing += len(out.run)
            self._spend(len(out.run))
            return out  # start these now; the next step refills
        start: list[Delivery] = []
        while self.buffer and len(start) < free:
            d = self.buffer.popleft()
            # a lease that may have lapsed: recovery requeues the job (never started: no blame)
            (start if self._fresh(d, now) else out.dropped).append(d)
        run = free - len(start) + max(0, self.ahead - len(self.armed))
        reserve = max(0, self.prefetch - len(self.buffer))
        if self._all_capped:  # a cap cuts leases ahead: ask for free slots only
            run, reserve = free - len(start), 0
        if self._budget is not None:  # no prefetch past the last job this worker will run
            run = min(run, self._budget - len(start))
            reserve = min(reserve, max(0, self._budget - free - len(self.buffer)))
        self._executing += len(start)  # counted now, so a concurrent ended() cannot undercount
        return Plan(out, start, run, reserve)

    def _plan_alone(self) -> Plan:
        """Start the first suspect, alone: the others run elsewhere meanwhile, unblamed."""
        suspect = self.suspects.popleft()
        out = Step(give_back=[*self.armed, *self.buffer])
        self.armed.clear()
        self.buffer.clear()
        self._executing += 1  # counted now, so a concurrent ended() cannot undercount
        return Plan(out, [suspect], 0, 0, suspect)

    def _undo(self, plan: Plan) -> None:
        """The fetch failed: put back what the plan took out (the next round tries again)."""
        self._executing -= len(plan.start)
        if plan.suspect is not None:
            self.suspects.appendleft(plan.suspect)
            self.buffer.extend(plan.out.give_back)
            plan.out.give_back = []
        else:
            self.buffer.extendleft(reversed(plan.start))

    def _absorb(self, plan: Plan, leased: list[Delivery], started: list[Delivery], next_due: float | None,
                ended: dict[str, list[str]] | None, *, sent: float) -> Step:
        """Take in what the fetch leased and started: the round's jobs to run now."""
        out = plan.out
        out.ended = ended
        self.pace.fetched(self.clock() - sent)
        self._executing -= len(plan.start) - len(started)
        ok = {id(d) for d in started}
        out.dropped += [d for d in plan.start if id(d) not in ok]  # refused: cancelled, or lease lost
        if plan.suspect is not None and started:
            self.alone = plan.suspect
        for d in started:
            d.running = True
        out.run.extend(started)
        self._keep(leased, out)
        self._queue_empty = not leased and not started
        out.idle = self._queue_empty and not (self.buffer or self.suspects or self.armed or out.give_back)
        out.next_due = next_due
        self._spend(len(out.run))
        self._cond.notify_all()
        return out

    def _spend(self, started: int) -> None:
        if self._budget is not None:
            self._budget -= started

    def _fresh(self, d: Delivery, now: float) -> bool:
        """Whether an armed or reserved job's lease surely holds long enough to start it."""
        return now < d.deadline - self.lease / 3

    def _fetch(self, run: int, reserve: int, start: list[Delivery]
               ) -> tuple[list[Delivery], list[Delivery], float | None, dict[str, list[str]] | None]:
        """One fetch per queue that has jobs to start or room left; returns (leased, started,
        seconds until the next scheduled job, the workflow steps it ended by queue or None)."""
        leased: list[Delivery] = []
        started: list[Delivery] = []
        next_due: float | None = None
        ended: dict[str, list[str]] | None = None
        limits = self.limits
        for q in self._order():
            pairs = [d for d in start if d.queue == q]
            if not pairs and (run + reserve <= 0 or leased):
                continue  # jobs in hand start now: the next round goes on to the other queues
            sent = self.clock()
            reply = self.broker.fetch(q, run, reserve, self.worker_id, [(d.id, d.token) for d in pairs],
                                      suspect_lost=self._suspect_lost,
                                      rate=limits.rates.get(q), max_running=limits.caps.get(q, 0),
                                      limits=limits.tasks)
            started += [d for d, ok in zip(pairs, reply.started, strict=True) if ok]
            for d in reply.deliveries:
                d.deadline = sent + self.lease
                if d.running:
                    run -= 1
                else:
                    reserve -= 1
            leased += reply.deliveries
            if reply.ended:  # expired workflow steps: rare, so no dict per round otherwise
                ended = {**(ended or {}), q: list(reply.ended)}
            if reply.capped:
                self._capped.add(q)
            else:
                self._capped.discard(q)
            if reply.next_due is not None:
                next_due = reply.next_due if next_due is None else min(next_due, reply.next_due)
        return leased, started, next_due, ended

    def _order(self) -> list[str]:
        """This round's queue order: the woken ones first, then the rest in turn (one step along
        each round, so with every queue busy each gets its share of the free slots)."""
        qs = self.queues
        if len(qs) == 1:
            return qs
        k = self._turn % len(qs)
        self._turn += 1
        order = qs[k:] + qs[:k]
        with self._cond:
            woken, self.woken = self.woken, []
        if woken:
            order = [q for q in woken if q in qs] + [q for q in order if q not in woken]
        return order

    def idle_wait(self, stop: threading.Event, next_due: float | None, *, burst: bool = False) -> None:
        """Nothing to do: block in Redis until a wake-up token, the next due job, or SAFETY_FETCH."""
        start = self.clock()
        due_at = None if next_due is None else start + next_due
        give_up = start + (0.05 if burst else SAFETY_FETCH)
        with self._cond:
            self._idling = True
        while not stop.is_set():
            with self._cond:
                if self.armed or self.buffer:  # a settle leased jobs meanwhile (accept)
                    break
            now = self.clock()
            timeout = min(IDLE_BLOCK, give_up - now, IDLE_BLOCK if due_at is None else due_at - now + 0.001)
            if timeout <= 0:
                break
            woken = self.broker.wait(self.queues, self.worker_id, timeout)
            if woken is not None:
                with self._cond:  # new work: worth a fetch even with every slot busy (to prefetch it)
                    self._queue_empty = False
                    self.woken = woken
                break
        with self._cond:
            self._idling = False
            if due_at is not None and self.clock() >= due_at:
                self._queue_empty = False
