"""Schedules on Redis: a mixin of RedisBroker. Each schedule's claim state (and, for one stored at
run time, its definition) is one hash in its queue's slot, changed only by fire.lua and
schedule.lua; the index of stored schedules and the counter of changes are in the global slot."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from taskq.broker.client import Connection, integer, text
from taskq.broker.keys import Keys, QueueKeys
from taskq.broker.records import Claim, ClaimResult, ScheduleState, StoredSchedule

#: the state fields of a schedule's hash, in ScheduleState's order
_STATE = ("spec", "last", "fired_ms", "job", "by", "fired_tick", "skipped_tick", "paused", "runs")
#: the definition fields of a stored schedule's hash
_DEFINITION = ("source", "task", "cron", "tz", "every_ms", "args", "start_ms", "end_ms", "limit", "overlap",
               "catchup", "rev", "updated_ms")


def _state(raw: Sequence[Any]) -> ScheduleState | None:
    last = integer(raw[1])
    if raw[0] is None or last is None:
        return None
    return ScheduleState(text(raw[0]) or "", last, integer(raw[2]), text(raw[3]), text(raw[4]), integer(raw[5]),
                         integer(raw[6]), text(raw[7]) == "1", integer(raw[8]) or 0)


def _stored(schedule_id: str, queue: str, raw: Sequence[Any]) -> StoredSchedule | None:
    f = dict(zip(_DEFINITION, raw[len(_STATE):], strict=True))
    if text(f["source"]) != "api":
        return None
    return StoredSchedule(
        id=schedule_id, queue=queue, task=text(f["task"]) or "", cron=text(f["cron"]) or "",
        tz=text(f["tz"]) or "UTC", every_ms=integer(f["every_ms"]) or 0, args=f["args"] or b"",
        start_ms=integer(f["start_ms"]), end_ms=integer(f["end_ms"]), limit=integer(f["limit"]),
        overlap=text(f["overlap"]) or "queue", catchup=text(f["catchup"]) or "latest", rev=integer(f["rev"]) or 0,
        updated_ms=integer(f["updated_ms"]) or 0, state=_state(raw[:len(_STATE)]),
    )


def _blank(value: int | None) -> int | str:
    return "" if value is None else value


class ScheduleStore:
    """The schedules part of the Schedules role; mixed into RedisBroker, which provides these."""

    conn: Connection
    keys: Keys

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    # -- claims (beat) ----------------------------------------------------

    def schedule_state(self, queue: str, name: str) -> ScheduleState | None:
        with self.conn.errors():
            return _state(self.conn.client.hmget(self.qk(queue).schedule(name), *_STATE))

    def fire_many(self, claims: Sequence[Claim]) -> list[ClaimResult]:
        calls = []
        for c in claims:
            k = self.qk(c.queue)
            calls.append(("fire", [k.base, k.schedule(c.name), k.job(c.job_id)],
                          [c.mode, c.tick_ms, c.spec, c.beat_id, c.job_id, c.body, c.priority,
                           "skip" if c.skip_overlap else "queue", c.gate, c.task, c.expires_ms, c.expires_at_ms,
                           "a" if c.at_most_once else ""]))
        return [ClaimResult(int(r)) for r in self.conn.run_many(calls)]

    # -- schedules declared in code ---------------------------------------

    def index_schedules(self, app: str, schedules: Mapping[str, str]) -> dict[str, tuple[str, str]]:
        with self.conn.errors():
            before = self.conn.client.hgetall(self.keys.schedules)
            legacy = self.conn.client.hgetall(self.keys.legacy_schedules)
            if legacy:  # written before the index had a hash tag: move it (newer entries win)
                self.conn.client.hset(self.keys.schedules, mapping={**legacy, **before})
                self.conn.client.delete(self.keys.legacy_schedules)
                before = {**legacy, **before}
            if schedules:
                self.conn.client.hset(self.keys.schedules, mapping={n: f"{q}|{app}" for n, q in schedules.items()})
        out = {}
        for name, value in before.items():
            queue, _, owner = (text(value) or "").partition("|")  # no owner: written before apps had names
            out[text(name) or ""] = (queue, owner)
        return out

    def remove_schedule(self, name: str, queue: str, *, unindex: bool = True) -> None:
        with self.conn.errors():
            self.conn.client.delete(self.qk(queue).schedule(name))
            if unindex:
                self.conn.client.hdel(self.keys.schedules, name)

    # -- schedules stored at run time ---------------------------------------

    def put_schedule(self, s: StoredSchedule, fingerprint: str) -> tuple[int, int] | None:
        """Store a new revision of `s` (its queue's hash first, then the index): (rev, last
        claimed tick), or None if a schedule declared in code has its id."""
        reply = self.conn.run("schedule", [self.qk(s.queue).schedule(s.id)], [
            "put", fingerprint, s.task, s.cron, s.tz, s.every_ms, s.args, _blank(s.start_ms), _blank(s.end_ms),
            _blank(s.limit), s.overlap, s.catchup])
        if int(reply[0]) < 0:
            return None
        with self.conn.errors():
            moved = text(self.conn.client.hget(self.keys.stored_schedules, s.id))
            self.conn.client.hset(self.keys.stored_schedules, s.id, s.queue)
        if moved is not None and moved != s.queue:  # to another queue: the old hash goes, its ticks with it
            with self.conn.errors():
                self.conn.client.delete(self.qk(moved).schedule(s.id))
        self.schedules_changed()
        return int(reply[0]), int(reply[1])

    def pause_schedule(self, queue: str, name: str, paused: bool, *, create: bool = False) -> bool:
        """Pause (or resume) a schedule: no tick fires while paused; one resumed fires from the
        first tick at least 1 s away. False if there is no such schedule (unless `create`)."""
        done = self.conn.run("schedule", [self.qk(queue).schedule(name)],
                             ["pause" if paused else "resume", "1" if create else "0"])
        self.schedules_changed()
        return bool(int(done))

    def drop_schedule(self, schedule_id: str) -> bool:
        """Remove a stored schedule (its hash, then its index entry); False if there is none."""
        with self.conn.errors():
            queue = text(self.conn.client.hget(self.keys.stored_schedules, schedule_id))
            if queue is None:
                return False
            self.conn.client.delete(self.qk(queue).schedule(schedule_id))
            self.conn.client.hdel(self.keys.stored_schedules, schedule_id)
        self.schedules_changed()
        return True

    def stored_schedule_queues(self) -> dict[str, str]:
        """id -> queue of every schedule stored at run time."""
        with self.conn.errors():
            raw = self.conn.client.hgetall(self.keys.stored_schedules)
        return {text(k) or "": text(v) or "" for k, v in raw.items()}

    def stored_schedules(self, ids: Mapping[str, str]) -> list[StoredSchedule]:
        """The definitions (with their state) of these stored schedules (id -> queue), in one
        round trip; ids with no stored definition are left out."""
        if not ids:
            return []
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for schedule_id, queue in ids.items():
                pipe.hmget(self.qk(queue).schedule(schedule_id), *_STATE, *_DEFINITION)
            rows = pipe.execute()
        found = (_stored(i, q, raw) for (i, q), raw in zip(ids.items(), rows, strict=True))
        return [s for s in found if s is not None]

    def schedules_rev(self) -> int:
        """A counter that moves with every change of a stored schedule, or a pause or resume."""
        with self.conn.errors():
            return int(self.conn.client.get(self.keys.schedules_rev) or 0)

    def schedules_changed(self) -> None:
        with self.conn.errors():
            self.conn.client.incr(self.keys.schedules_rev)
