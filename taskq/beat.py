"""Beat: fires cron schedules exactly once per tick, and promotes due jobs of every queue.

Run any number of beats. One leads, under a lease in Redis that it renews; the others
wait to take over. The lease only saves work: what makes a tick fire once is fire.lua,
which claims the tick (tick > the schedule's newest claimed tick) in the same script that
enqueues its job. All times are Redis's clock (TIME); the process clock only times sleeps.

Schedules stored at run time (app.schedules.upsert) fire the same way: the leader re-reads them
whenever the namespace's change counter moved (checked each step, at least once a second), and
fire.lua refuses a tick built from an older revision, a paused schedule's or a removed one's.

A leader fires every tick of its term as it comes (late ones too, if it stalled less than a
lease). Ticks that passed while no beat led (downtime, a leader's death), or that are more
than a lease late, go by the schedule's catch-up policy: "latest", "all" (bounded) or "none".
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from taskq._version import VERSION
from taskq.app import TaskQ
from taskq.broker import Broker, redact
from taskq.broker.base import Claim, ClaimMode, ClaimResult, LeadResult, ScheduleState, StoredSchedule
from taskq.errors import BrokerError
from taskq.log import get_logger
from taskq.outage import Outage
from taskq.schedule import Schedule

log = get_logger("taskq.beat")

#: default seconds the leader lease lasts without renewal (renewed every third of it)
LEASE = 10.0
#: longest wait between promotions of due scheduled jobs (new delayed jobs are seen this late)
PROMOTE_EVERY_MS = 1000
#: rounds of firing in one step at most (a round fires each schedule's next due tick)
MAX_FIRES_PER_STEP = 1000
#: the next tick of a schedule that fires none now (paused, ended, or waiting to be re-read)
NEVER = 2**62


class Beat:
    """One `taskq beat` process. `run()` blocks until `stop()`; `step()` is one pass.

    Args:
        lease: seconds the leader lease lasts; a dead leader's ticks resume (by its
            catch-up policy) about this long after it died.
        beat_id: name in logs and in the lease (default host:pid:random).
    """

    def __init__(self, app: TaskQ, *, lease: float = LEASE, beat_id: str | None = None) -> None:
        self.app = app
        self.lease_ms = max(100, int(lease * 1000))
        self.id = beat_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.leading = False
        self.fired = 0
        #: ticks this beat recorded as skipped (overlap="skip")
        self.skipped = 0
        self._stop = threading.Event()
        #: newest claimed tick per schedule, as far as this beat knows (Redis has the truth)
        self._last: dict[str, int] = {}
        self._next: dict[str, int] = {}
        self._promote_at = 0
        self._cleaned = False
        #: the stored schedules this beat can fire (their task is in its app), by id
        self._stored: dict[str, Schedule] = {}
        #: the change counter when they were read (None: read them at the next step)
        self._rev: int | None = None
        #: stored schedules whose task this app lacks (logged once each)
        self._foreign: set[str] = set()

    @property
    def broker(self) -> Broker:
        return self.app.broker

    # -- lifecycle --------------------------------------------------------

    def run(self) -> None:
        """Lead or stand by until stop(); on the way out, hand the lead to another beat."""
        self.broker.ping()
        log.info("beat started", beat=self.id, schedules=sorted(self.app.schedules.code), lease_s=self.lease_ms / 1000,
                 url=redact(self.app.url), namespace=self.app.namespace, app=self.app.name,
                 version=VERSION, pid=os.getpid())
        outage = Outage(log, beat=self.id)
        while not self._stop.is_set():
            try:
                now = self.broker.time_ms()
                started = time.monotonic()
                wake = self.step(now)
            except BrokerError as exc:
                self._stop.wait(outage.failed("beat", exc))
                continue
            outage.ok("beat")
            self._stop.wait(max(0.0, (wake - now) / 1000 - (time.monotonic() - started)))
        resigned = False
        if self.leading:
            try:
                resigned = self.broker.resign(self.id)
            except BrokerError as exc:
                log.warning("could not resign the lead; it lapses with its lease", beat=self.id, error=str(exc))
        log.info("beat stopped", beat=self.id, fired=self.fired, resigned=resigned)

    def stop(self) -> None:
        self._stop.set()

    # -- one pass ---------------------------------------------------------

    def step(self, now: int) -> int:
        """Lead (or try to) at Redis time `now` (unix ms): fire what is due, promote due
        jobs. Returns the Redis time at which the next step is wanted."""
        status = self.broker.lead(self.id, self.lease_ms)
        if status is LeadResult.HELD_BY_OTHER:
            if self.leading:
                log.warning("beat lost the lead", beat=self.id)
                self.leading = False
            return now + min(1000, self.lease_ms // 4)  # stand by: take over soon after a lease lapses
        if status is LeadResult.TAKEN or not self.leading:
            self.leading = True
            log.info("beat leading", beat=self.id)
            if not self._cleaned:
                self._remove_stale()
                self._cleaned = True
            self._reload(now)
            for schedule in self._all():
                if schedule.name in self._last:
                    self._catch_up(schedule, now)
        else:
            if self._rev is None or self.broker.schedules_rev() != self._rev:
                self._reload(now)
            self._fire_due(now)
        if now >= self._promote_at:
            self._promote(now)
        return min(now + self.lease_ms // 3, self._promote_at, *self._next.values())

    def next_tick(self) -> int | None:
        """The soonest tick this beat will fire next (unix ms), once it has led a step."""
        return min(self._next.values(), default=None)

    # -- schedules --------------------------------------------------------

    def _all(self) -> list[Schedule]:
        return [*self.app.schedules.code.values(), *self._stored.values()]

    def _reload(self, now: int) -> None:
        """Read the stored schedules again and every schedule's state (pauses move it too)."""
        self._rev = self.broker.schedules_rev()  # before reading: a change after it is seen next step
        stored = self.broker.stored_schedules(self.broker.stored_schedule_queues())
        fresh: dict[str, tuple[Schedule, StoredSchedule]] = {}
        for st in stored:
            if st.id in self.app.schedules.code:
                continue  # a code schedule owns the name in this app
            entry = self.app.schedules.build(st)
            if entry is None:
                if st.id not in self._foreign:
                    self._foreign.add(st.id)
                    log.warning("stored schedule not fired: its task is not in this beat's app", schedule=st.id,
                                task=st.task, app=self.app.name)
                continue
            fresh[st.id] = (entry, st)
        for gone in set(self._stored) - set(fresh):
            self._next.pop(gone, None)
            self._last.pop(gone, None)
            log.info("schedule removed", schedule=gone)
        changed = [e for name, (e, _) in fresh.items() if name not in self._stored or self._stored[name].rev != e.rev]
        if len(changed) > 10:  # a beat's first read of many: one line, not one per schedule
            log.info("stored schedules read", schedules=len(fresh), new_or_changed=len(changed))
        else:
            for entry in changed:
                log.info("schedule stored" if entry.name not in self._stored else "schedule changed",
                         schedule=entry.name, task=entry.task.name, when=entry.timing.expr, rev=entry.rev)
        self._stored = {name: entry for name, (entry, _) in fresh.items()}
        for s in self.app.schedules.code.values():
            self._sync(s, now)
        for entry, st in fresh.values():
            self._sync(entry, now, st.state)

    def _remove_stale(self) -> None:
        """Forget this app's schedules that are no longer in its code (or moved queue). Schedules
        another app of the namespace registered are left alone (ones recorded before apps had
        names count as this app's)."""
        current = {name: s.queue for name, s in self.app.schedules.code.items()}
        for name, (queue, owner) in self.broker.index_schedules(self.app.name, current).items():
            if owner not in ("", self.app.name):
                continue
            if current.get(name) != queue:
                self.broker.remove_schedule(name, queue, unindex=name not in current)
                log.info("schedule removed", schedule=name, queue=queue, app=self.app.name,
                         why="moved queue" if name in current else "not in the code")

    def _sync(self, s: Schedule, now: int, state: ScheduleState | None = None) -> None:
        """Load a schedule's newest claimed tick; a code one starts afresh at `now` if new or changed."""
        if state is None:
            state = self.broker.schedule_state(s.queue, s.name)
        if s.source == "api":
            if state is None or state.spec != s.spec:  # changed since it was read: read it again
                self._rev = None
                self._next[s.name] = NEVER
                return
        elif state is None or state.spec != s.spec:
            claim = Claim(s.queue, s.name, ClaimMode.RESET, now, s.spec, self.id)
            done = self.broker.fire_many([claim])[0]
            if done is ClaimResult.STORED_ELSEWHERE:
                log.warning("schedule not fired: a stored schedule has its name", schedule=s.name)
                self._next[s.name] = NEVER
                return
            if done is ClaimResult.CLAIMED:
                log.info("schedule added" if state is None else "schedule changed", schedule=s.name,
                         when=s.timing.expr, tz=s.timing.tz, before=None if state is None else state.spec)
            state = self.broker.schedule_state(s.queue, s.name) or ScheduleState(s.spec, now)
        self._last[s.name] = state.last
        tick = s.timing.next_after(state.last)
        ended = (s.limit is not None and state.runs >= s.limit) or (s.end_ms is not None and tick > s.end_ms)
        self._next[s.name] = NEVER if state.paused or ended else tick

    def _catch_up(self, s: Schedule, now: int) -> None:
        """Apply the catch-up policy to the ticks due by `now` that no beat fired."""
        limit = s.max_catchup if s.catchup == "all" else 1
        if self._next.get(s.name, NEVER) >= NEVER:
            return
        missed = s.timing.recent(self._last[s.name], now, limit)
        if not missed:
            return
        if s.catchup == "none":
            self._claim([(s, missed[-1], ClaimMode.SKIP)], now)
            log.info("missed ticks skipped", schedule=s.name, catchup="none", up_to=missed[-1])
            return
        log.info("catching up", schedule=s.name, catchup=s.catchup, firing=len(missed), oldest=missed[0])
        self._claim([(s, tick, ClaimMode.FIRE) for tick in missed], now)

    def _fire_due(self, now: int) -> None:
        """Fire every tick due by `now`, oldest first, each round in one round trip."""
        schedules = self._all()
        for s in schedules:
            if s.name not in self._next:
                self._sync(s, now)
            if self._next[s.name] < now - self.lease_ms:
                # over a lease late, though leading (Redis refused writes, e.g. out of memory):
                # these ticks were missed, like downtime
                self._catch_up(s, now)
        for _ in range(MAX_FIRES_PER_STEP):
            due = [(s, self._next[s.name], ClaimMode.FIRE) for s in schedules if self._next[s.name] <= now]
            if not due:
                return
            self._claim(due, now)

    def _claim(self, items: list[tuple[Schedule, int, ClaimMode]], now: int) -> None:
        claims = [Claim(s.queue, s.name, mode, tick, s.spec, self.id, s.job_id(tick),
                        s.body(tick, now) if mode is ClaimMode.FIRE else b"", s.task.opts.priority,
                        s.overlap == "skip", s.task.gate or "", s.task.name, s.task.defaults.place.expires_ms,
                        s.task.defaults.place.expires_at_ms, s.task.opts.at_most_once)
                  for s, tick, mode in items]
        for (s, tick, mode), done in zip(items, self.broker.fire_many(claims), strict=True):
            if done is ClaimResult.CLAIMED:
                self._last[s.name] = tick
                if mode is ClaimMode.FIRE:
                    self.fired += 1
                    log.info("cron fired", schedule=s.name, task=s.task.name, queue=s.queue,
                             job_id=s.job_id(tick), tick=tick, lateness_ms=now - tick)
            elif done is ClaimResult.SKIPPED_OVERLAP:
                self._last[s.name] = tick
                self.skipped += 1
                log.info("cron skipped", schedule=s.name, task=s.task.name, queue=s.queue, tick=tick,
                         why="overlap: the previous run is still queued or running")
            elif done is ClaimResult.ALREADY_CLAIMED:  # another beat claimed it (or a later tick): take its view
                state = self.broker.schedule_state(s.queue, s.name)
                self._last[s.name] = max(tick, state.last if state else tick)
            elif done in (ClaimResult.PAUSED, ClaimResult.ENDED):  # until a change re-reads it
                self._next[s.name] = NEVER
                continue
            elif s.source == "api":  # changed or removed since this beat read it
                self._rev = None
                self._next[s.name] = NEVER
                continue
            else:  # the stored expression is another one (a beat with other code reset it)
                log.warning("schedule changed by another beat", schedule=s.name)
                self._sync(s, now)
                continue
            self._next[s.name] = s.timing.next_after(self._last[s.name])

    # -- delayed jobs -----------------------------------------------------

    def _promote(self, now: int) -> None:
        """Move due scheduled jobs of every known queue to ready, in batches."""
        soonest = now + PROMOTE_EVERY_MS
        for queue in self.broker.queues():
            for _ in range(100):  # up to 100 batches of 1000 per queue per pass
                _, due = self.broker.promote(queue)
                if due != 0:
                    break
            if due is not None:
                soonest = min(soonest, now + due)
        self._promote_at = soonest
