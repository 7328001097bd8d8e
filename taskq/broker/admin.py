"""The operator reads, the worker registry and the beat lease of RedisBroker, over its connection.

Raw hash fields become typed records here (base.JobRecord, WorkerRecord, ...): nothing above the
broker reads a Redis field name or parses a token or an id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from taskq.broker.base import (
    Depths,
    Entry,
    Holds,
    JobRecord,
    Leader,
    LeadResult,
    LogEntry,
    Policy,
    Progress,
    ServerFacts,
    Status,
    WorkerRecord,
)
from taskq.broker.client import Connection, integer, text
from taskq.broker.keys import Keys, QueueKeys

#: fields of a job hash read by job() (HMGET, so a huge result is read only when asked for)
_FIELDS = ("status", "msg", "priority", "enqueued_ms", "started_ms", "finished_ms", "deliveries", "lost",
           "token", "result", "error", "reason", "progress", "progress_text", "progress_ms", "cancel", "fired_by",
           "place", "task", "attempt", "max_attempts", "part")


def job_record(queue: str, job_id: str, values: Sequence[Any], due: Any = None) -> JobRecord | None:
    """A JobRecord from the values of _FIELDS and its score in the scheduled set (None if the job
    has no record)."""
    f = dict(zip(_FIELDS, values, strict=True))
    raw_status = text(f["status"])
    if raw_status is None and f["msg"] is None:
        return None
    try:
        status: Status | None = Status(raw_status or "")
    except ValueError:
        status = None
    token = text(f["token"])
    progress = None
    if f["progress"] is not None:
        try:
            progress = Progress(float(f["progress"]), text(f["progress_text"]) or "", integer(f["progress_ms"]))
        except ValueError:
            progress = None
    return JobRecord(
        id=job_id, queue=queue, status=status, message=f["msg"] or b"", priority=integer(f["priority"]) or 0,
        enqueued_ms=integer(f["enqueued_ms"]), started_ms=integer(f["started_ms"]),
        finished_ms=integer(f["finished_ms"]), deliveries=integer(f["deliveries"]) or 0,
        lost=integer(f["lost"]) or 0, worker=token.rsplit(":", 1)[0] if token else None, result=f["result"],
        error=text(f["error"]), reason=text(f["reason"]), progress=progress,
        cancel_requested=f["cancel"] is not None, fired_by=text(f["fired_by"]), place=text(f["place"]),
        raw_status=raw_status if status is None else None, task=text(f["task"]), attempt=integer(f["attempt"]),
        max_attempts=integer(f["max_attempts"]), partition=text(f["part"]),
        due_ms=None if due is None else int(float(due)),
    )


#: partitions (the largest backlogs) whose lanes oldest_ready_ms() looks into
LANES_SAMPLED = 20


class Admin:
    """Inspector, Registry and the beat lease; mixed into RedisBroker, which provides these attributes."""

    conn: Connection
    keys: Keys
    policy: Policy

    def qk(self, queue: str) -> QueueKeys:
        raise NotImplementedError

    # -- inspecting -------------------------------------------------------

    def queues(self) -> list[str]:
        with self.conn.errors():  # two reads, not SUNION: the legacy key is in another Cluster slot
            ours, legacy = self.conn.client.pipeline(transaction=False).smembers(self.keys.queues) \
                .smembers(self.keys.legacy_queues).execute()
        return sorted(text(q) or "" for q in ours | legacy)

    def depths(self, queue: str) -> Depths:
        k = self.qk(queue)
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for p in range(10):
                pipe.llen(k.ready(p))
            pipe.zcard(k.scheduled).zcard(k.leases).scard(k.reserved).zcard(k.dead).get(k.ordered).get(k.parked)
            pipe.get(k.laned).zcard(k.backlog)
            *ready, scheduled, leased, reserved, dead, ordered, parked, laned, partitions = pipe.execute()
        return Depths(sum(ready) + int(laned or 0), scheduled, reserved, max(0, leased - reserved), dead,
                      int(ordered or 0), int(parked or 0), partitions)

    def dead(self, queue: str, limit: int | None = 100) -> list[Entry]:
        with self.conn.errors():
            end = -1 if limit is None else limit - 1
            rows = self.conn.client.zrevrange(self.qk(queue).dead, 0, end, withscores=True)
        return [Entry(text(i) or "", int(score)) for i, score in rows]

    def running(self, queue: str, limit: int = 100) -> list[Entry]:
        with self.conn.errors():
            rows = self.conn.client.zrange(self.qk(queue).leases, 0, limit - 1, withscores=True)
        return [Entry(text(i) or "", int(score)) for i, score in rows]

    def job_ids(self, queue: str, state: str, offset: int = 0, limit: int = 50) -> list[str]:
        k = self.qk(queue)
        with self.conn.errors():
            c = self.conn.client
            if state == "scheduled":
                rows = c.zrange(k.scheduled, offset, offset + limit - 1)
            elif state == "running":
                rows = c.zrange(k.leases, offset, offset + limit - 1)
            elif state == "dead":
                rows = c.zrevrange(k.dead, offset, offset + limit - 1)
            elif state in ("succeeded", "cancelled"):  # lists in the order they ended: newest last
                rows = c.lrange(k.succeeded if state == "succeeded" else k.cancelled, -offset - limit, -offset - 1)
                rows.reverse()
            elif state == "ready":  # in the order they will run: highest priority first
                rows, skip = [], offset
                for prio in range(9, -1, -1):
                    size = int(c.llen(k.ready(prio)))
                    if skip >= size:
                        skip -= size
                        continue
                    rows += c.lrange(k.ready(prio), skip, skip + limit - len(rows) - 1)
                    skip = 0
                    if len(rows) >= limit:
                        break
            else:
                raise ValueError(f"unknown state {state!r}")
        return [text(r) or "" for r in rows]

    def job(self, queue: str, job_id: str) -> JobRecord | None:
        return self.jobs(queue, [job_id])[0]

    def jobs(self, queue: str, job_ids: Sequence[str]) -> list[JobRecord | None]:
        k = self.qk(queue)
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hmget(k.job(job_id), *_FIELDS).zscore(k.scheduled, job_id)
            rows = pipe.execute()
            records = [job_record(queue, job_id, row, due)
                       for job_id, row, due in zip(job_ids, rows[::2], rows[1::2], strict=True)]
            # a succeeded job's message, if the queue kept it, is beside its record: one more read
            # only when the records asked for hold such jobs
            ended = [r.id for r in records if r is not None and r.status is Status.SUCCEEDED and not r.message]
            kept = dict(zip(ended, self.conn.client.hmget(k.args_kept, ended), strict=True)) if ended else {}
        return [dataclasses.replace(r, message=kept[r.id]) if r is not None and kept.get(r.id) else r
                for r in records]

    def job_logs(self, queue: str, job_id: str) -> list[LogEntry]:
        with self.conn.errors():
            rows = self.conn.client.lrange(self.qk(queue).logs(job_id), 0, -1)
        return [LogEntry.decode(text(r) or "") for r in rows]

    def holds(self, queue: str, window_ms: int = 0, now_ms: int | None = None) -> Holds:
        k = self.qk(queue)
        since = (self.time_ms() if now_ms is None else now_ms) - window_ms if window_ms else 0
        with self.conn.errors():
            names = sorted(text(t) or "" for t in self.conn.client.smembers(k.gates))
            pipe = self.conn.client.pipeline(transaction=False)
            for name in names:
                pipe.llen(f"{k.gate(name)}:held")
            if window_ms:
                pipe.zcount(k.rate, since, "+inf")
            counts = pipe.execute() if names or window_ms else []
        held = {name: int(n) for name, n in zip(names, counts, strict=False) if n}
        return Holds(int(counts[-1]) if window_ms else 0, held)

    def oldest_ready_ms(self, queue: str) -> int | None:
        k = self.qk(queue)
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for p in range(10):
                pipe.lindex(k.ready(p), 0)
            heads = [text(h) or "" for h in pipe.execute() if h is not None]
            heads += self._lane_heads(k)
            if not heads:
                return None
            pipe = self.conn.client.pipeline(transaction=False)
            for job_id in heads:
                pipe.hget(k.job(job_id), "enqueued_ms")
            stamps = [n for n in (integer(v) for v in pipe.execute()) if n is not None]
        return min(stamps) if stamps else None

    def _lane_heads(self, k: QueueKeys, most: int = LANES_SAMPLED) -> list[str]:
        """The first job of each lane of the `most` partitions with the largest backlogs: where the
        oldest waiting jobs of a fair queue are (its ready jobs wait in lanes, lua/lib/part.lua);
        not every lane, so a queue of 100 000 partitions costs one bounded read."""
        parts = [text(p) or "" for p in self.conn.client.zrevrange(k.backlog, 0, most - 1)]
        if not parts:
            return []
        pipe = self.conn.client.pipeline(transaction=False)
        for part in parts:
            for prio in range(10):
                pipe.lindex(f"{k.partition(part)}:{prio}", 0)
        return [text(h) or "" for h in pipe.execute() if h is not None]

    def replay(self, queue: str, job_id: str, body: bytes) -> bool:
        return bool(self.conn.run("replay", [self.qk(queue).base], [job_id, body]))

    def purge(self, queue: str, job_ids: Sequence[str]) -> int:
        return int(self.conn.run("purge", [self.qk(queue).base], list(job_ids)))

    def pause(self, queue: str, paused: bool = True) -> bool:
        return bool(self.conn.run("pause", [self.qk(queue).base], ["1" if paused else "0"]))

    def paused(self, queues: Sequence[str]) -> set[str]:
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for q in queues:
                pipe.exists(self.qk(q).paused)
            return {q for q, on in zip(queues, pipe.execute() if queues else [], strict=True) if on}

    def server_facts(self) -> ServerFacts:
        try:
            info = self.conn.client.info()
        except redis.ResponseError:  # fakeredis (memory://) and some proxies have no INFO
            return ServerFacts()
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.conn.error(exc) from None
        if info and all(isinstance(v, dict) for v in info.values()):  # Cluster: node -> its INFO
            info = next(iter(info.values()))
        return ServerFacts(version=text(info.get("redis_version")), used_memory=integer(info.get("used_memory")),
                           max_memory=integer(info.get("maxmemory")),
                           eviction_policy=text(info.get("maxmemory_policy")),
                           connected_clients=integer(info.get("connected_clients")))

    def empty(self, queue: str, reason: str, batch: int = 1000) -> int:
        cancelled = 0
        while True:
            n, taken = self.conn.run("empty", [self.qk(queue).base], [self.policy.result_ttl_ms, batch, reason])
            cancelled += int(n)
            if int(taken) == 0:
                return cancelled

    # -- workers ----------------------------------------------------------

    def heartbeat(self, worker_id: str, ttl_ms: int, info: Mapping[str, str | int] | None = None) -> None:
        args: list[Any] = [worker_id, ttl_ms]
        for field, value in (info or {}).items():
            args += [field, value]
        self.conn.run("heartbeat", [self.keys.workers, self.keys.worker_info(worker_id)], args)

    def live_workers(self) -> list[WorkerRecord]:
        now = self.time_ms()
        with self.conn.errors():
            ids = [text(i) or "" for i in self.conn.client.zrangebyscore(self.keys.workers, now, "+inf")]
            pipe = self.conn.client.pipeline(transaction=False)
            for worker_id in ids:
                pipe.hgetall(self.keys.worker_info(worker_id))
            infos = pipe.execute()
        out = []
        for worker_id, info in zip(ids, infos, strict=True):
            f = {(text(k) or ""): (text(v) or "") for k, v in info.items()}
            out.append(WorkerRecord(
                id=worker_id, host=f.get("host", ""), pid=integer(f.get("pid")) or 0,
                queues=tuple(q for q in f.get("queues", "").split(",") if q),
                concurrency=integer(f.get("concurrency")) or 0, processed=integer(f.get("processed")) or 0,
                started_ms=integer(f.get("started_ms")), version=f.get("version", ""),
                beat_ms=integer(f.get("beat_ms")),
            ))
        return out

    # -- beat -------------------------------------------------------------

    def time_ms(self) -> int:
        with self.conn.errors():
            seconds, micros = self.conn.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def lead(self, beat_id: str, lease_ms: int) -> LeadResult:
        return LeadResult(int(self.conn.run("leader", [self.keys.beat_leader], [beat_id, lease_ms, "hold"])))

    def resign(self, beat_id: str) -> bool:
        return bool(self.conn.run("leader", [self.keys.beat_leader], [beat_id, 0, "resign"]))

    def leader(self) -> Leader | None:
        key = self.keys.beat_leader
        with self.conn.errors():
            holder, ttl = self.conn.client.pipeline(transaction=False).get(key).pttl(key).execute()
        return None if holder is None else Leader(text(holder) or "", int(ttl))

    def advance(self, queue: str, ms: int) -> int:
        return int(self.conn.run("advance", [self.qk(queue).base], [ms]))

    def promote(self, queue: str, limit: int = 1000) -> tuple[int, int | None]:
        moved, due = self.conn.run("promote", [self.qk(queue).base], [limit, self.policy.dead_ttl_ms])
        return int(moved), None if int(due) < 0 else int(due)
