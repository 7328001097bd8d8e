"""RedisBroker: every Redis command taskq sends, over redis-py (or fakeredis for memory://)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from taskq.broker import scripts
from taskq.broker.keys import BEAT_LEADER, QUEUES, SCHEDULES, WORKERS, QueueKeys, worker_info, worker_wake
from taskq.errors import BrokerError, BrokerOutOfMemory, BrokerUnavailable

#: most jobs stored by one enqueue_many script call
ENQUEUE_BATCH = 1000
#: default seconds one Redis call may take (connect, or wait for a reply) before BrokerUnavailable
TIMEOUT = 10.0

_memory_servers: dict[str, Any] = {}
_memory_lock = threading.Lock()


@dataclasses.dataclass(slots=True)  # not frozen: a frozen __init__ costs per job fetched
class Delivery:
    """One leased job as fetched: raw message bytes plus the lease token that owns it."""

    queue: str
    id: str
    body: bytes
    token: str
    deliveries: int
    #: times this job's worker died (or hung) while running it: > 0 makes it a suspect
    lost: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class ScheduleState:
    """What Redis holds for one cron schedule."""

    spec: str
    #: unix ms of the newest tick claimed (fired or skipped), or of the reset
    last: int
    fired_ms: int | None = None
    job: str | None = None
    by: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Claim:
    """One fire.lua call: claim `tick_ms` of a schedule ("fire", "skip" or "reset")."""

    queue: str
    name: str
    mode: str
    tick_ms: int
    spec: str
    beat_id: str
    job_id: str = ""
    body: bytes = b""
    priority: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class JobState:
    """A job's record as stored: status and outcome fields, all optional but status."""

    status: str
    result: bytes | None = None
    error: str | None = None
    reason: str | None = None


def redact(url: str) -> str:
    """The URL with any password replaced by ***, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisBroker:
    """All of taskq's Redis I/O. Thread-safe: redis-py pools connections per thread."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        self.url = url
        self.timeout = timeout
        #: longest blocking wait per call: well inside the reply timeout, so a block is not an outage
        self.block_max = max(0.05, timeout / 2)
        if url.startswith("memory://"):
            import fakeredis  # only memory:// needs it at run time

            with _memory_lock:
                server = _memory_servers.setdefault(url, fakeredis.FakeServer(version=(7,)))
            self.client: Any = fakeredis.FakeRedis(server=server)
            self._scripts = scripts.load(self.client, shebang=False)
        else:
            self.client = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=timeout,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            )
            self._scripts = scripts.load(self.client)
        #: key names of each queue, built once
        self._keys: dict[str, QueueKeys] = {}
        self._fetch_keys: dict[str, tuple[list[str], str]] = {}
        #: per-thread connections for script calls (real Redis only; fakeredis has no sockets)
        self._fast: threading.local | None = None if url.startswith("memory://") else threading.local()

    # -- plumbing ---------------------------------------------------------

    def _error(self, exc: redis.RedisError) -> BrokerError:
        """The taskq error for a redis-py one: one line, password hidden."""
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return BrokerUnavailable(f"cannot reach Redis at {redact(self.url)} ({exc})")
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or str(exc).startswith("OOM"):
            return BrokerOutOfMemory(
                f"Redis at {redact(self.url)} is out of memory (maxmemory reached); nothing was written")
        return BrokerError(f"Redis at {redact(self.url)} refused a command: {exc}")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:  # no context manager here: this is every script call, the hot path
            if self._fast is None:
                return self._scripts[name](keys=list(keys), args=list(args))
            return self._evalsha(self._scripts[name], keys, args)
        except redis.RedisError as exc:
            raise self._error(exc) from None

    def _evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA on this thread's own connection: redis-py's send/read without the pool,
        retry and instrumentation layers per call (about half the client time of a script
        call). Like the client, it reconnects and tries once more on a connection error."""
        local = self._fast
        assert local is not None
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # a fork must not share the parent's socket
            local.conn, local.pid = self.client.connection_pool.make_connection(), os.getpid()
            conn = local.conn
        for attempt in range(3):
            try:
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                script.sha = self.client.script_load(script.script)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt:
                    raise
                time.sleep(0.05)
        raise redis.ConnectionError("script could not be loaded")

    def ping(self) -> None:
        """Raise BrokerUnavailable unless Redis answers."""
        with self._errors():
            self.client.ping()

    def close(self) -> None:
        conn = getattr(self._fast, "conn", None)
        if conn is not None:
            conn.disconnect()
        self.client.close()

    # -- producing --------------------------------------------------------

    def enqueue(self, queue: str, job_id: str, body: bytes, priority: int = 0, delay_ms: int = 0,
                at_ms: int = 0, key: str | None = None) -> str:
        """Store a job; return its id, or the id of the live job already holding `key`."""
        k = self._keys.get(queue) or self._keys.setdefault(queue, QueueKeys(queue))
        keys = [k.job_prefix + job_id, k.ready(priority), k.scheduled, k.notify, k.dedup(key or "")]
        found, _ = self._run("enqueue", keys, (job_id, body, delay_ms, at_ms, "0" if key is None else "1", priority))
        return _text(found) or job_id

    def enqueue_many(self, queue: str, jobs: Sequence[tuple[str, bytes, int]], *,
                     delay_ms: int = 0, at_ms: int = 0) -> int:
        """Store new jobs (id, packed message, priority) of one queue, ENQUEUE_BATCH per script call."""
        k = QueueKeys(queue)
        keys = [k.scheduled, k.notify, *k.ready_by_priority]
        batches: list[list[Any]] = []
        for start in range(0, len(jobs), ENQUEUE_BATCH):
            args: list[Any] = [k.job_prefix, delay_ms, at_ms]
            for job in jobs[start:start + ENQUEUE_BATCH]:
                args.extend(job)
            batches.append(args)
        if self._fast is None or len(batches) < 2:
            return sum(int(self._run("enqueue_many", keys, args)) for args in batches)
        return self._pipelined("enqueue_many", keys, batches)

    def _pipelined(self, name: str, keys: Sequence[str], batches: Sequence[Sequence[Any]]) -> int:
        """Run one script over several argument batches, sending batch k+1 while Redis runs batch k
        (replies are read at the end), so the client's command packing overlaps the server's work.
        EVAL with the body, not EVALSHA: a script cache flushed mid-stream cannot fail a batch."""
        body = self._scripts[name].script
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            for args in batches:
                conn.send_command("EVAL", body, len(keys), *keys, *args)
            replies: list[Any] = []
            for _ in batches:
                try:
                    replies.append(int(conn.read_response()))
                except redis.ResponseError as exc:  # read every reply, so the connection stays in step
                    replies.append(exc)
        except redis.RedisError as exc:
            conn.disconnect()
            raise self._error(exc) from None
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise self._error(reply)
        return sum(replies)

    def register_queues(self, queues: Sequence[str]) -> None:
        """Remember queue names for `taskq status`."""
        with self._errors():
            self.client.sadd(QUEUES, *queues)

    def queues(self) -> list[str]:
        with self._errors():
            return sorted(_text(q) or "" for q in self.client.smembers(QUEUES))

    # -- consuming --------------------------------------------------------

    def fetch(self, queue: str, count: int, lease_ms: int, worker_id: str,
              dead_ttl_ms: int = 7 * 86_400_000) -> tuple[list[Delivery], float | None]:
        """Lease up to `count` jobs; also return seconds until the next scheduled job."""
        cached = self._fetch_keys.get(queue)
        if cached is None:
            k = QueueKeys(queue)
            cached = self._fetch_keys[queue] = (
                [*k.ready_by_priority, k.scheduled, k.leases, k.dead, k.seq, k.notify], k.job_prefix)
        keys, job_prefix = cached
        reply = self._run("fetch", keys, (count, lease_ms, worker_id, job_prefix, dead_ttl_ms))
        next_due = None if int(reply[0]) < 0 else int(reply[0]) / 1000
        out = [  # ids and tokens are ASCII; the message stays bytes
            Delivery(queue, reply[i].decode(), reply[i + 1], reply[i + 2].decode(), int(reply[i + 3]),
                     int(reply[i + 4]))
            for i in range(1, len(reply), 5)
        ]
        return out, next_due

    def wait(self, queues: Sequence[str], worker_id: str, timeout: float) -> bool:
        """Block until a wake-up token arrives on any queue (or for this worker); False on timeout."""
        keys = [QueueKeys(q).notify for q in queues] + [worker_wake(worker_id)]
        with self._errors():
            return self.client.blpop(keys, timeout=min(self.block_max, max(0.001, timeout))) is not None

    def wake(self, worker_id: str) -> None:
        """Interrupt a worker's blocking wait (used on shutdown)."""
        key = worker_wake(worker_id)
        with self._errors():
            self.client.pipeline().rpush(key, "1").pexpire(key, 60_000).execute()

    def ack(self, queue: str, done: Sequence[tuple[str, str, bytes]], result_ttl_ms: int) -> list[str]:
        """Record successes as (id, token, packed result); return ids whose lease was lost."""
        k = QueueKeys(queue)
        args: list[Any] = [k.job_prefix, result_ttl_ms, k.done_prefix]
        for item in done:
            args.extend(item)
        return [_text(i) or "" for i in self._run("ack", [k.leases], args)]

    def retry(self, queue: str, job_id: str, token: str, body: bytes, priority: int,
              delay_ms: int, error: str, result_ttl_ms: int = 3_600_000) -> int:
        """Schedule the next attempt; 1 moved, 0 lease lost, 2 cancelled meanwhile."""
        k = QueueKeys(queue)
        keys = [k.leases, k.scheduled, k.ready(priority), k.job(job_id), k.notify, k.done(job_id)]
        return int(self._run("retry", keys, [job_id, token, body, delay_ms, error, result_ttl_ms]))

    def bury(self, queue: str, job_id: str, token: str, reason: str, error: str,
             *, dead_ttl_ms: int, dead_max: int, body: bytes = b"") -> bool:
        """Move a leased job to the dead-letter set; False if the lease was lost."""
        k = QueueKeys(queue)
        keys = [k.leases, k.dead, k.job(job_id), k.done(job_id)]
        args = [job_id, token, reason, error, dead_ttl_ms, dead_max, k.job_prefix, body]
        return bool(self._run("bury", keys, args))

    def renew(self, queue: str, held: Sequence[tuple[str, str]], lease_ms: int) -> list[str]:
        """Extend leases of (id, token) pairs; return ids whose lease was lost."""
        k = QueueKeys(queue)
        args: list[Any] = [lease_ms, k.job_prefix]
        for pair in held:
            args.extend(pair)
        return [_text(i) or "" for i in self._run("renew", [k.leases], args)]

    def release(self, queue: str, held: Sequence[tuple[str, str]]) -> int:
        """Give (id, token) jobs back to the front of their ready lists."""
        k = QueueKeys(queue)
        args: list[Any] = [k.job_prefix]
        for pair in held:
            args.extend(pair)
        return int(self._run("release", [k.leases, *k.ready_by_priority, k.notify], args))

    def recover(self, queue: str, max_lost: int, dead_ttl_ms: int, limit: int = 500,
                *, worker: str = "") -> tuple[int, int]:
        """Requeue jobs whose lease lapsed (or, given `worker`, every job a dead worker held);
        bury those lost max_lost times. Returns (requeued, dead)."""
        k = QueueKeys(queue)
        keys = [k.leases, k.dead, *k.ready_by_priority, k.notify]
        args = [k.job_prefix, max_lost, limit, dead_ttl_ms, k.done_prefix, worker]
        requeued, buried = self._run("recover", keys, args)
        return int(requeued), int(buried)

    # -- job handles ------------------------------------------------------

    def state(self, queue: str, job_id: str, *, watch: bool = False) -> JobState | None:
        """The job's status and outcome; with watch, ask to be woken when it ends."""
        k = QueueKeys(queue)
        if watch:
            reply = self._run("watch", [k.job(job_id)], [])
            if not reply:
                return None
        else:
            with self._errors():
                reply = self.client.hmget(k.job(job_id), "status", "result", "error", "reason")
            if reply[0] is None:
                return None
        return JobState(_text(reply[0]) or "", reply[1], _text(reply[2]), _text(reply[3]))

    def wait_done(self, queue: str, job_id: str, timeout: float) -> bool:
        """Block until the job's final script pushes its wake-up token; False on timeout."""
        key = QueueKeys(queue).done(job_id)
        with self._errors():
            # rotating the list onto itself leaves the token for every other waiter
            return self.client.blmove(key, key, min(self.block_max, max(0.001, timeout)), "RIGHT", "LEFT") is not None

    def cancel(self, queue: str, job_id: str, result_ttl_ms: int) -> str | None:
        """Cancel a job; return the status it had, or None if there is no such job."""
        k = QueueKeys(queue)
        keys = [k.job(job_id), k.scheduled, k.done(job_id), *k.ready_by_priority]
        return _text(self._run("cancel", keys, [job_id, result_ttl_ms]))

    def job_fields(self, queue: str, job_id: str) -> dict[str, bytes]:
        """Every stored field of a job record (empty if none)."""
        with self._errors():
            raw = self.client.hgetall(QueueKeys(queue).job(job_id))
        return {(_text(f) or ""): v for f, v in raw.items()}

    # -- operating --------------------------------------------------------

    def depths(self, queue: str) -> dict[str, int]:
        """Counts of ready, scheduled, running (leased) and dead jobs."""
        k = QueueKeys(queue)
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for key in k.ready_by_priority:
                pipe.llen(key)
            pipe.zcard(k.scheduled).zcard(k.leases).zcard(k.dead)
            *ready, scheduled, running, dead = pipe.execute()
        return {"ready": sum(ready), "scheduled": scheduled, "running": running, "dead": dead}

    def dead_ids(self, queue: str, limit: int | None = 100) -> list[str]:
        """Dead-lettered job ids, most recent first (all of them with limit None)."""
        return [job_id for job_id, _ in self.dead(queue, limit)]

    def dead(self, queue: str, limit: int | None = 100) -> list[tuple[str, int]]:
        """Dead-lettered (job id, unix ms it died), most recent first (all of them with limit None)."""
        with self._errors():
            end = -1 if limit is None else limit - 1
            rows = self.client.zrevrange(QueueKeys(queue).dead, 0, end, withscores=True)
        return [(_text(i) or "", int(score)) for i, score in rows]

    def running(self, queue: str, limit: int = 100) -> list[tuple[str, int]]:
        """Leased (job id, lease deadline unix ms), the longest-held first."""
        with self._errors():
            rows = self.client.zrange(QueueKeys(queue).leases, 0, limit - 1, withscores=True)
        return [(_text(i) or "", int(score)) for i, score in rows]

    def many_job_fields(self, queue: str, job_ids: Sequence[str]) -> list[dict[str, bytes]]:
        """job_fields() of several jobs in one round trip."""
        k = QueueKeys(queue)
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for job_id in job_ids:
                pipe.hgetall(k.job(job_id))
            rows = pipe.execute()
        return [{(_text(f) or ""): v for f, v in raw.items()} for raw in rows]

    def queues_holding(self, job_id: str, queues: Sequence[str]) -> list[str]:
        """Which of `queues` have a record of this job id."""
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for q in queues:
                pipe.exists(QueueKeys(q).job(job_id))
            found = pipe.execute()
        return [q for q, n in zip(queues, found, strict=True) if n]

    def oldest_ready_ms(self, queue: str) -> int | None:
        """When the job next in line (the head of each ready list) was enqueued, unix ms."""
        k = QueueKeys(queue)
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for key in k.ready_by_priority:
                pipe.lindex(key, 0)
            heads = [_text(h) for h in pipe.execute() if h is not None]
            if not heads:
                return None
            pipe = self.client.pipeline(transaction=False)
            for job_id in heads:
                pipe.hget(k.job(job_id or ""), "enqueued_ms")
            stamps = [int(v) for v in pipe.execute() if v is not None and v.isdigit()]
        return min(stamps) if stamps else None

    def replay(self, queue: str, job_id: str, body: bytes) -> bool:
        """Put a dead job back on its ready list with a fresh message."""
        k = QueueKeys(queue)
        keys = [k.dead, k.job(job_id), *k.ready_by_priority, k.notify, k.done(job_id)]
        return bool(self._run("replay", keys, [job_id, body]))

    def purge(self, queue: str, job_ids: Sequence[str]) -> int:
        """Delete dead jobs for good; ids not (or no longer) dead are left alone. Returns how many."""
        k = QueueKeys(queue)
        return int(self._run("purge", [k.dead], [k.job_prefix, k.done_prefix, *job_ids]))

    def progress(self, queue: str, job_id: str, token: str, fraction: float, text: str) -> bool:
        """Record a running job's progress; False if this delivery no longer holds the job."""
        return bool(self._run("progress", [QueueKeys(queue).job(job_id)], [token, repr(fraction), text]))

    # -- workers ----------------------------------------------------------

    def heartbeat(self, worker_id: str, ttl_ms: int, info: dict[str, str | int] | None = None) -> None:
        """Say this worker is live for ttl_ms more (with its info); ttl_ms 0 deregisters it."""
        args: list[Any] = [worker_id, ttl_ms]
        for field, value in (info or {}).items():
            args += [field, value]
        self._run("heartbeat", [WORKERS, worker_info(worker_id)], args)

    def live_workers(self) -> list[dict[str, str]]:
        """Every worker whose last heartbeat has not lapsed, with what it said about itself."""
        now = self.time_ms()
        with self._errors():
            ids = [_text(i) or "" for i in self.client.zrangebyscore(WORKERS, now, "+inf")]
            pipe = self.client.pipeline(transaction=False)
            for worker_id in ids:
                pipe.hgetall(worker_info(worker_id))
            infos = pipe.execute()
        out = []
        for worker_id, info in zip(ids, infos, strict=True):
            fields = {(_text(k) or ""): (_text(v) or "") for k, v in info.items()}
            out.append({"id": worker_id, **fields})
        return out

    # -- beat -------------------------------------------------------------

    def time_ms(self) -> int:
        """Redis's clock (TIME) in unix ms: the one clock for ticks, due times and leases."""
        with self._errors():
            seconds, micros = self.client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    def lead(self, beat_id: str, lease_ms: int) -> int:
        """Take or renew the beat leader lease: 2 taken (new term), 1 renewed, 0 held by another."""
        return int(self._run("leader", [BEAT_LEADER], [beat_id, lease_ms, "hold"]))

    def resign(self, beat_id: str) -> bool:
        """Give the leader lease up (if this beat holds it) so another beat takes over at once."""
        return bool(self._run("leader", [BEAT_LEADER], [beat_id, 0, "resign"]))

    def leader(self) -> tuple[str, int] | None:
        """(id of the leading beat, ms left on its lease), or None."""
        with self._errors():
            holder, ttl = self.client.pipeline(transaction=False).get(BEAT_LEADER).pttl(BEAT_LEADER).execute()
        return None if holder is None else (_text(holder) or "", int(ttl))

    def schedule_state(self, queue: str, name: str) -> ScheduleState | None:
        with self._errors():
            raw = self.client.hmget(QueueKeys(queue).schedule(name), "spec", "last", "fired_ms", "job", "by")
        if raw[0] is None or raw[1] is None:
            return None
        fired = None if raw[2] is None else int(raw[2])
        return ScheduleState(_text(raw[0]) or "", int(raw[1]), fired, _text(raw[3]), _text(raw[4]))

    def fire(self, queue: str, name: str, mode: str, tick_ms: int, spec: str, beat_id: str,
             job_id: str = "", body: bytes = b"", priority: int = 0) -> int:
        """Claim a tick (see fire.lua): 1 done, 0 already claimed, -1 the stored spec differs."""
        return self.fire_many([Claim(queue, name, mode, tick_ms, spec, beat_id, job_id, body, priority)])[0]

    def fire_many(self, claims: Sequence[Claim]) -> list[int]:
        """Several fire.lua calls in one round trip (each one atomic on its own)."""
        script = self._scripts["fire"]
        with self._errors():
            pipe = self.client.pipeline(transaction=False)
            for c in claims:
                k = QueueKeys(c.queue)
                keys = [k.schedule(c.name), k.job(c.job_id), k.ready(c.priority), k.notify]
                script(keys=keys, args=[c.mode, c.tick_ms, c.spec, c.beat_id, c.job_id, c.body, c.priority],
                       client=pipe)
            return [int(r) for r in pipe.execute()]

    def index_schedules(self, schedules: dict[str, str]) -> dict[str, str]:
        """Record name -> queue of the given schedules; return what was recorded before."""
        with self._errors():
            before = self.client.hgetall(SCHEDULES)
            if schedules:
                self.client.hset(SCHEDULES, mapping=schedules)
        return {(_text(n) or ""): (_text(q) or "") for n, q in before.items()}

    def remove_schedule(self, name: str, queue: str, *, unindex: bool = True) -> None:
        """Delete a schedule's state (and, unless it moved queue, its index entry)."""
        with self._errors():
            self.client.delete(QueueKeys(queue).schedule(name))
            if unindex:
                self.client.hdel(SCHEDULES, name)

    def promote(self, queue: str, dead_ttl_ms: int) -> int | None:
        """Move due scheduled jobs to ready (up to 1000 per call); ms until the next is due."""
        _, next_due = self.fetch(queue, 0, 0, "beat", dead_ttl_ms)
        return None if next_due is None else int(next_due * 1000)
