"""The event streams of RedisBroker: one capped Redis stream per queue, appended to by the
scripts of the transitions (lua/lib/events.lua), read here with XREAD (blocking, resumable).

One XREAD names the streams of one Cluster slot only, so a follower reads each set of queues
that read_sets() gives on its own: every queue in one set on one server (one XREAD blocks on all
of them), a set per slot on Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskq.broker.base import EventRecord
from taskq.broker.client import Connection, text
from taskq.broker.keys import QueueKeys, retention

#: entries one read returns at most
READ_COUNT = 500


def event_record(queue: str, entry_id: Any, fields: Mapping[Any, Any]) -> EventRecord:
    """An EventRecord from one XREAD entry (bytes in, typed out)."""
    f = {text(k) or "": text(v) for k, v in fields.items()}
    eid = text(entry_id) or "0-0"

    def number(name: str) -> int | None:
        raw = f.get(name)
        return int(float(raw)) if raw else None

    progress = f.get("progress")
    return EventRecord(queue, eid, f.get("kind") or "", f.get("job") or "", f.get("task") or "",
                       number("attempt") or 1, int(eid.split("-", 1)[0]), f.get("error") or None,
                       f.get("reason") or None, number("delay_ms"), number("duration_ms"),
                       float(progress) if progress else None, f.get("text"))


def records(reply: Any, queue_of: Mapping[str, str]) -> list[EventRecord]:
    """The EventRecords of an XREAD reply ([[stream key, [[id, fields], ...]], ...]), in order."""
    out: list[EventRecord] = []
    for key, entries in reply or []:
        queue = queue_of[text(key) or ""]
        out.extend(event_record(queue, eid, fields) for eid, fields in entries)
    return out


class Stream:
    """The events role; mixed into RedisBroker, which provides these attributes."""

    conn: Connection

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    def read_sets(self, queues: Sequence[str]) -> list[list[str]]:
        """The queues grouped by the slot of their stream (one server: a single slot, one set)."""
        by_slot: dict[int, list[str]] = {}
        for q in queues:
            by_slot.setdefault(self.conn.slot(self.qk(q).events), []).append(q)
        return list(by_slot.values())

    def set_retention(self, queue: str, events: int, succeeded: int | None, args: int = 1000) -> None:
        """About how many events the queue's stream keeps (0: its scripts write none), how
        many succeeded records (lib/finish.lua; -1 stored for None: no cap) and how many of those
        keep their message (keep_args). One slot: one MSET."""
        with self.conn.errors():
            self.conn.client.mset(retention(self.qk(queue), events, succeeded, args))

    def event_heads(self, queues: Sequence[str]) -> dict[str, str]:
        """The id of each queue's newest event ("0-0" if none): reading from there gets what
        happens next, and nothing is missed between two reads."""
        with self.conn.errors():
            heads = {}
            for q in queues:  # one call per queue: on Cluster each stream is in its own slot
                newest = self.conn.client.xrevrange(self.qk(q).events, count=1)
                heads[q] = text(newest[0][0]) if newest else "0-0"
            return {q: h or "0-0" for q, h in heads.items()}

    def read_events(self, positions: Mapping[str, str], timeout: float,
                    count: int = READ_COUNT) -> list[EventRecord]:
        """Events after each queue's position (an event id), oldest first per queue; blocks up
        to `timeout` seconds (within the reply timeout) until there is one. [] on timeout."""
        streams = {self.qk(q).events: pos for q, pos in positions.items()}
        queue_of = {self.qk(q).events: q for q in positions}
        with self.conn.errors():
            reply = self.conn.client.xread(streams, count=count, block=max(1, int(self.conn.block(timeout) * 1000)))
        return records(reply, queue_of)

    def events_between(self, queue: str, since_ms: int, count: int = 20_000) -> list[EventRecord]:
        """The queue's events from `since_ms` (unix ms, Redis's clock) on, oldest first, at most count."""
        key = self.qk(queue).events
        with self.conn.errors():
            rows = self.conn.client.xrange(key, min=f"{since_ms}-0", max="+", count=count)
        return records([[key, rows]], {key: queue})

    def stream_length(self, queue: str) -> int:
        """How many events the queue's stream holds now."""
        with self.conn.errors():
            return int(self.conn.client.xlen(self.qk(queue).events))
