"""Settler: records finished runs in batches, one broker.settle() per queue per batch for every
outcome (success, retry, dead letter), then emits their events. Outcomes wait in memory through
a Redis outage and are tried again; lease tokens fence a late one.
"""

from __future__ import annotations

import dataclasses
import queue as queue_mod
import time
from collections.abc import Callable

from taskq import execute
from taskq.broker.base import Consumer, Delivery, Outcome, Refill, Settled, Settlement
from taskq.errors import BrokerError
from taskq.events import Emitter, EventKind, JobEvent
from taskq.message import Message
from taskq.outage import Outage

#: most outcomes gathered into one batch
BATCH = 256
#: seconds a busy worker waits to gather more outcomes into one settle call
LINGER = 0.001
#: seconds without a batch after which a held-back progress count is published
PUBLISH_RETRY = 0.3


@dataclasses.dataclass(slots=True)
class Finished:
    """One run's outcome on its way to Redis."""

    delivery: Delivery
    task: str
    attempt: int
    settlement: Settlement
    #: seconds the body ran; None if it never ran (an undecodable message, an unknown task)
    duration: float | None
    #: "Type: message" of the failure, for retries
    summary: str | None = None
    delay: float | None = None
    #: set once Redis has it, so a batch tried again after an outage skips it
    recorded: bool = False
    #: a workflow step with successors: once it ends, the settler tells them (continuer.py)
    continues: bool = False
    #: a failure's traceback for its log line (None: not worth one, see execute.failed)
    traceback: str | None = None


def finished(delivery: Delivery, message: Message, outcome: execute.Outcome, limit: int) -> Finished:
    """The outcome of a run as what to record (a retry carries its next attempt's message)."""
    d = delivery
    continues = message.flow is not None and message.flow[3]
    if isinstance(outcome, execute.Succeeded):  # the common case first, positional: this runs per job
        return Finished(d, message.task, message.attempt, Settlement(Outcome.OK, d.id, d.token, outcome.result,
                                                                     message.max_attempts),
                        outcome.duration, continues=continues)
    if isinstance(outcome, execute.RetryLater):
        # a stored message may exceed a lowered limit a little: its retry still goes
        attempt = message.attempt + outcome.spend
        body = message.packed(attempt=attempt, limit=max(limit, len(d.body) + 64))
        settlement = Settlement(Outcome.RETRY, d.id, d.token, body=body, delay_ms=int(outcome.delay * 1000),
                                error=outcome.error, summary=outcome.summary or "", attempt=attempt,
                                signal=outcome.signal)
        # a step's retry ends it if it was cancelled meanwhile: the settler then continues it
        return Finished(d, message.task, message.attempt, settlement, outcome.duration, outcome.summary,
                        outcome.delay, continues=continues,
                        traceback=outcome.error if outcome.show_traceback else None)
    settlement = Settlement(Outcome.DEAD, d.id, d.token, reason=outcome.reason, error=outcome.error,
                            signal=outcome.signal)
    return Finished(d, message.task, message.attempt, settlement, outcome.duration, continues=continues,
                    traceback=outcome.error if outcome.show_traceback else None)


def undeliverable(delivery: Delivery, reason: str, message: Message | None = None) -> Finished:
    """A leased job that cannot run (undecodable message, unknown task): dead, with its reason;
    named after the message's task if it decoded."""
    settlement = Settlement(Outcome.DEAD, delivery.id, delivery.token, reason=reason)
    return Finished(delivery, "" if message is None else message.task, 0 if message is None else message.attempt,
                    settlement, None)


#: event kind and discarded-outcome word by (outcome kind, what settling did)
_EVENTS: dict[tuple[Outcome, Settled], tuple[EventKind, str | None]] = {
    (Outcome.OK, Settled.DONE): (EventKind.SUCCEEDED, None),
    (Outcome.RETRY, Settled.DONE): (EventKind.RETRYING, None),
    (Outcome.RETRY, Settled.CANCELLED): (EventKind.CANCELLED, None),
    (Outcome.DEAD, Settled.DONE): (EventKind.DEAD, None),
    (Outcome.OK, Settled.LOST): (EventKind.LOST, "result"),
    (Outcome.RETRY, Settled.LOST): (EventKind.LOST, "retry"),
    (Outcome.DEAD, Settled.LOST): (EventKind.LOST, "dead-letter"),
}


#: the events that carry the failure's traceback
_FAILED = (EventKind.RETRYING, EventKind.DEAD)


class Settler:
    """Runs on its own thread (`run`); `put` hands it an outcome, `close` ends it once drained.

    Args:
        busy: whether bodies still run (then it lingers a moment to batch more outcomes).
        on_recorded: called with the outcomes Redis has, per settle call (the worker stops
            holding their leases).
        after_batch: called after each batch (the worker publishes its progress count); False when
            it held the count back, so it is called again once no batch came for PUBLISH_RETRY.
        refill: what a settle of n outcomes of a queue may lease for the slots they free (None:
            nothing); on_refill takes the jobs so leased, and the monotonic time the call was sent.
    """

    def __init__(self, broker: Consumer, events: Emitter, outage: Outage, *, busy: Callable[[], bool],
                 on_recorded: Callable[[list[Finished]], None], after_batch: Callable[[], bool],
                 refill: Callable[[str, int], Refill | None] = lambda q, n: None,
                 on_refill: Callable[[list[Delivery], float], None] = lambda leased, sent: None,
                 continues: Callable[[str, list[str]], None] = lambda q, ids: None,
                 logs: Callable[[str, str], list[str]] = lambda q, job_id: []) -> None:
        self.broker = broker
        #: a job's log lines not sent yet, now the settle call's to send (worker/joblogs.py)
        self.logs = logs
        self.continues = continues
        self.refill = refill
        self.on_refill = on_refill
        self.events = events
        self.outage = outage
        self.busy = busy
        self.on_recorded = on_recorded
        self.after_batch = after_batch
        self._queue: queue_mod.SimpleQueue[Finished | None] = queue_mod.SimpleQueue()
        self.closing = False

    def put(self, item: Finished) -> None:
        self._queue.put(item)

    def close(self) -> None:
        """Record what is queued, then end the thread."""
        self.closing = True
        self._queue.put(None)

    def run(self) -> None:
        closed = False
        unpublished = False  # a batch whose count the throttle held back: publish it once things calm
        while not closed:
            try:
                item = self._queue.get(timeout=PUBLISH_RETRY if unpublished else None)
            except queue_mod.Empty:
                unpublished = not self.after_batch()
                continue
            batch: list[Finished] = []
            linger_until = 0.0
            while True:
                if item is None:
                    closed = True
                    break
                batch.append(item)
                if len(batch) >= BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                    continue
                except queue_mod.Empty:
                    pass
                if not self.busy():
                    break
                # bodies still running: wait a moment so one script call settles several
                linger_until = linger_until or time.monotonic() + LINGER
                left = linger_until - time.monotonic()
                if left <= 0:
                    break
                try:
                    item = self._queue.get(timeout=left)
                except queue_mod.Empty:
                    break
            if batch:
                self.record_until_done(batch)
                unpublished = not self.after_batch()

    def record_until_done(self, batch: list[Finished], give_up: float | None = None) -> None:
        """Record a batch, trying again through an outage (until the monotonic `give_up`)."""
        while batch:
            try:
                self.record(batch)
                self.outage.ok("settle")
            except BrokerError as exc:
                pause = self.outage.failed("settle", exc)
                time.sleep(min(pause, 0.5) if self.closing else pause)
            batch = [f for f in batch if not f.recorded]
            if give_up is not None and time.monotonic() > give_up:
                return

    def record(self, batch: list[Finished]) -> None:
        """One settle call per queue of the batch; then the events, in order."""
        by_queue: dict[str, list[Finished]] = {}
        for f in batch:
            if not f.recorded:
                by_queue.setdefault(f.delivery.queue, []).append(f)
        for q, items in by_queue.items():
            for f in items:
                if more := self.logs(q, f.settlement.id):  # nothing to take from most jobs: no call
                    f.settlement.lines = [*f.settlement.lines, *more]
            refill = self.refill(q, len(items))
            sent = time.monotonic()
            leased: list[Delivery] = []
            if refill is None:
                results = self.broker.settle(q, [f.settlement for f in items])
            else:
                results, leased = self.broker.settle_and_lease(q, [f.settlement for f in items], refill)
            ended: list[str] = []
            for f, result in zip(items, results, strict=True):
                f.recorded = True
                self._emit(f, result)
                if f.continues and result is not Settled.LOST and (
                        f.settlement.kind is not Outcome.RETRY or result is Settled.CANCELLED):
                    ended.append(f.settlement.id)
            if ended:  # before on_recorded: a burst worker must see the successors it made ready
                self.continues(q, ended)
            self.on_recorded(items)
            if leased:
                self.on_refill(leased, sent)

    def _emit(self, f: Finished, result: Settled) -> None:
        kind, discarded = _EVENTS[f.settlement.kind, result]
        if not self.events.wants(kind):
            return
        s = f.settlement
        self.events.emit(JobEvent(
            kind, s.id, f.task, f.delivery.queue, f.attempt,
            error=f.summary, duration_ms=None if f.duration is None else round(f.duration * 1000, 3),
            reason=discarded or (s.reason if s.kind is Outcome.DEAD else None),
            delay_s=None if f.delay is None else round(f.delay, 3),
            traceback=f.traceback if kind in _FAILED else None,
        ))
