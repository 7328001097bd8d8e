"""Following the queues' event streams from any process (app.events(), app.events_async(),
`taskq events`): every transition of every job, as taskq.JobEvent, in the order each queue's
scripts wrote them, blocking without polling, resumable from an event id.

Each queue has its own stream (broker/stream.py). One blocking read follows every queue of a
set the broker says one read may name (`read_sets`: all of them on one server); several sets
(Redis Cluster: a set per slot) get a thread or task each, feeding one iterator.
"""

from __future__ import annotations

import asyncio
import queue as queue_mod
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

from taskq.broker import Broker
from taskq.broker.base import AsyncClient, EventRecord
from taskq.errors import ConfigError
from taskq.events import EventKind, JobEvent

#: where to start: "$" = what happens from now on, "0" = the oldest event kept, an event id
#: (JobEvent.event_id) for every queue, or a mapping queue -> event id (other queues: "$")
Since = str | Mapping[str, str]

#: seconds one blocking read waits at most (the broker caps it within its reply timeout)
READ_WAIT = 5.0

_KINDS = {kind.value: kind for kind in EventKind}


def job_event(rec: EventRecord) -> JobEvent | None:
    """The JobEvent of a stream entry (None for a kind this version does not know)."""
    kind = _KINDS.get(rec.kind)
    if kind is None:
        return None
    return JobEvent(kind, rec.job_id, rec.task, rec.queue, rec.attempt, error=rec.error,
                    duration_ms=None if rec.duration_ms is None else float(rec.duration_ms), reason=rec.reason,
                    delay_s=None if rec.delay_ms is None else rec.delay_ms / 1000, progress=rec.progress,
                    text=rec.text, event_id=rec.id, at_ms=rec.at_ms)


def _positions(queues: Sequence[str], since: Since, heads: Mapping[str, str]) -> dict[str, str]:
    """Each queue's starting event id from `since` ("$" resolved to the newest id now)."""
    out = {}
    for q in queues:
        start = since.get(q, "$") if isinstance(since, Mapping) else since
        if not isinstance(start, str) or not start:
            raise ConfigError(f"events: since must be '$', '0' or an event id, got {start!r}")
        out[q] = heads[q] if start == "$" else ("0-0" if start == "0" else start)
    return out


def _left(deadline: float | None) -> float:
    return READ_WAIT if deadline is None else min(READ_WAIT, deadline - time.monotonic())


def follow(broker: Broker, queues: Sequence[str], since: Since = "$",
           timeout: float | None = None) -> Iterator[JobEvent]:
    """The events of `queues` from `since` on; ends after `timeout` seconds without one (None:
    never)."""
    positions = _positions(queues, since, broker.event_heads(list(queues)))
    sets = broker.read_sets(list(positions))
    if len(sets) > 1:
        yield from _follow_each(broker, [{q: positions[q] for q in s} for s in sets], timeout)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while positions:
        wait = _left(deadline)
        if wait <= 0:
            return
        got = broker.read_events(positions, wait)
        for rec in got:
            positions[rec.queue] = rec.id
            event = job_event(rec)
            if event is not None:
                yield event
        if got and timeout is not None:
            deadline = time.monotonic() + timeout


def _follow_each(broker: Broker, parts: list[dict[str, str]], timeout: float | None) -> Iterator[JobEvent]:
    """follow() with one reading thread per set of queues (the positions of each)."""
    inbox: queue_mod.SimpleQueue[EventRecord | BaseException] = queue_mod.SimpleQueue()
    stop = threading.Event()

    def read(part: dict[str, str]) -> None:
        try:
            while not stop.is_set():
                for rec in broker.read_events(part, READ_WAIT):
                    part[rec.queue] = rec.id
                    inbox.put(rec)
        except BaseException as exc:  # the iterator raises it
            inbox.put(exc)

    for part in parts:
        threading.Thread(target=read, args=(part,), name=f"taskq-events-{min(part)}", daemon=True).start()
    try:
        while True:
            try:
                item = inbox.get(timeout=timeout)
            except queue_mod.Empty:
                return
            if isinstance(item, BaseException):
                raise item
            event = job_event(item)
            if event is not None:
                yield event
    finally:
        stop.set()  # each thread ends after its current read


async def follow_async(aio: AsyncClient, queues: Sequence[str], since: Since = "$",
                       timeout: float | None = None) -> AsyncIterator[JobEvent]:
    """follow() on an event loop: reads on the loop's client, never blocking it."""
    positions = _positions(queues, since, await aio.event_heads(list(queues)))
    inbox: asyncio.Queue[EventRecord | BaseException] = asyncio.Queue()

    async def read(part: dict[str, str]) -> None:
        try:
            while True:
                for rec in await aio.read_events(part, READ_WAIT):
                    part[rec.queue] = rec.id
                    inbox.put_nowait(rec)
        except Exception as exc:  # the iterator raises it
            inbox.put_nowait(exc)

    parts = [{q: positions[q] for q in s} for s in aio.read_sets(list(positions))]
    readers = [asyncio.ensure_future(read(part)) for part in parts if part]
    try:
        while readers:
            try:
                item = await asyncio.wait_for(inbox.get(), timeout)
            except TimeoutError:
                return
            if isinstance(item, BaseException):
                raise item
            event = job_event(item)
            if event is not None:
                yield event
    finally:
        for reader in readers:
            reader.cancel()
