"""AsyncBroker: the producer's side and the job handles of a RedisBroker, on redis-py's asyncio
client, for code that runs on an event loop (`delay_async`, `job.result_async`, ...).

One client per event loop (a client's connections belong to the loop that opened them), closed
by `aclose()`. Script calls made at the same time on one loop go out together: the first call
of a loop iteration schedules a flush, and every call made before it runs rides the same
pipeline (one round trip for an `asyncio.gather` of a hundred `delay_async`). The scripts, key
names and replies are the sync broker's; so are the errors (one line, password hidden).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import uuid
import weakref
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any, Protocol, cast

import redis
from redis.connection import HiredisRespSerializer
from redis.exceptions import NoScriptError, RedisClusterException
from redis.utils import HIREDIS_AVAILABLE

from taskq.broker import scripts
from taskq.broker.admin import _FIELDS, job_record
from taskq.broker.base import EventRecord, JobRecord, JobState, LogEntry, Move, NewJob, Placement, Policy, Status
from taskq.broker.calls import (
    ENQUEUE_BATCH,
    enqueue_call,
    enqueue_many_calls,
    enqueued,
    job_state,
    move_call,
    moved,
    status_of,
    stored,
)
from taskq.broker.client import Connection, text
from taskq.broker.keys import Keys, QueueKeys, retention
from taskq.broker.stream import READ_COUNT, records
from taskq.broker.urls import Kind


class SyncSide(Protocol):
    """What the asyncio half takes from its sync broker (a RedisBroker): the URL's connection
    (kind, timeouts, error mapping), key names and policy; never its calls."""

    conn: Connection
    keys: Keys
    policy: Policy

    def qk(self, queue: str) -> QueueKeys: ...
    def read_sets(self, queues: Sequence[str]) -> list[list[str]]: ...


class _PackInC:
    """A connection that packs commands with hiredis, as redis-py's sync connections do (its
    asyncio ones pack in Python: about 5 µs a job of a 100-job enqueue_many call)."""

    _packer = cast(Any, HiredisRespSerializer)()  # untyped in redis-py 8.2

    def pack_command(self, *args: Any) -> list[bytes]:
        return cast(list[bytes], self._packer.pack(*args))


@functools.cache
def _packing_in_c(connection_class: type) -> type:
    return type(connection_class.__name__, (_PackInC, connection_class), {})


def _pack_in_c(client: Any, kind: str) -> Any:
    """The client, its pool now opening connections that pack in C (when hiredis is there; one
    server: a Cluster client has a pool per node, fakeredis packs nothing)."""
    if HIREDIS_AVAILABLE and kind in (Kind.REDIS, Kind.SENTINEL):
        pool = client.connection_pool
        pool.connection_class = _packing_in_c(pool.connection_class)
    return client


#: most script calls sent in one pipeline
CHUNK = 100


class _Loop:
    """One event loop's client, its scripts, and the calls waiting for the next flush."""

    def __init__(self, client: Any, kind: str) -> None:
        self.client = client
        self.cluster = kind == Kind.CLUSTER
        self.scripts = scripts.load(client, shebang=kind != Kind.MEMORY)
        self.pending: list[tuple[str, Sequence[str], Sequence[Any], asyncio.Future[Any]]] = []
        self.flushing = False
        self.flush_task: asyncio.Task[None] | None = None
        #: result_async() waits (not on Cluster, whose keys of different queues differ in slot)
        self.waits: _DoneWaits | None = None
        #: a Cluster client reads the slot map once before the first calls (not once per call at once)
        self.ready: asyncio.Task[Any] | None = asyncio.get_running_loop().create_task(client.initialize()) \
            if self.cluster else None

    def call(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self.flushing:
            self.flushing = True
            self.flush_task = loop.create_task(self.flush())  # held: a pending task is only weakly referenced
        self.pending.append((name, keys, args, future))
        return future

    async def flush(self) -> None:
        """Send what waits, CHUNK calls per round trip (packing a pipeline holds the loop: a
        bounded one holds it briefly), until nothing waits."""
        try:
            while self.pending:
                batch, self.pending = self.pending[:CHUNK], self.pending[CHUNK:]
                await self._send(batch)
        finally:
            self.flushing = False

    async def _send(self, batch: list[tuple[str, Sequence[str], Sequence[Any], asyncio.Future[Any]]]) -> None:
        try:
            if self.ready is not None:
                await self.ready
            if self.cluster:  # redis-py routes each call to its slot's node; they run at once
                replies = await asyncio.gather(*(self.scripts[n](keys=k, args=a) for n, k, a, _ in batch),
                                               return_exceptions=True)
            elif len(batch) == 1:
                name, keys, args, _ = batch[0]
                replies = [await self.scripts[name](keys=keys, args=args)]
            else:  # EVALSHA in one pipeline; a server without the script runs it through the script object
                pipe = self.client.pipeline(transaction=False)
                for name, keys, args, _ in batch:
                    pipe.evalsha(self.scripts[name].sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
                for i, reply in enumerate(replies):
                    if isinstance(reply, NoScriptError):
                        name, keys, args, _ = batch[i]
                        replies[i] = await self.scripts[name](keys=keys, args=args)
        except Exception as exc:  # the whole flush failed (connection): every call gets it
            replies = [exc] * len(batch)
        for (_, _, _, future), reply in zip(batch, replies, strict=True):
            if not future.done():
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)


class _DoneWaits:
    """Every result_async() of one event loop waiting at once, in one blocking call: BLMPOP on
    their jobs' done lists plus a wake key of its own (pushed when a new waiter joins), so a
    thousand waiting handles hold one connection, not a thousand. A token taken is put back (a
    waiter in another process may want it too); the record's status is what the waiters read."""

    def __init__(self, broker: AsyncBroker, wake: str) -> None:
        self.broker = broker
        self.wake = wake
        self.waiting: dict[str, list[asyncio.Future[bool]]] = {}
        self.task: asyncio.Task[None] | None = None
        self.blocked = False
        self.kicked = False

    async def wait(self, key: str, timeout: float) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(key, []).append(future)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        elif self.blocked and not self.kicked:  # the running call does not name this key yet: end it
            self.kicked = True  # once: the next call names every key that joined meanwhile
            client = await self.broker._client()
            await client.rpush(self.wake, "1")
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        finally:
            waiters = self.waiting.get(key)
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    del self.waiting[key]

    async def _run(self) -> None:
        client = await self.broker._client()
        ttl = self.broker.sync.policy.result_ttl_ms
        while self.waiting:
            keys = list(self.waiting)
            self.blocked, self.kicked = True, False
            try:
                reply = await client.blmpop(self.broker.sync.conn.block(5.0), len(keys) + 1, self.wake, *keys,
                                            direction="LEFT")
            except Exception as exc:  # every waiter sees the error
                for waiters in self.waiting.values():
                    for f in waiters:
                        if not f.done():
                            f.set_exception(self.broker.sync.conn.error(exc) if isinstance(exc, redis.RedisError)
                                            else exc)
                return
            finally:
                self.blocked = False
            if reply is None:
                continue
            key = text(reply[0]) or ""
            if key == self.wake:
                continue
            await client.pipeline(transaction=False).rpush(key, "1").pexpire(key, ttl).execute()
            for f in self.waiting.pop(key, []):
                if not f.done():
                    f.set_result(True)


class AsyncBroker:
    """The asyncio half of a RedisBroker (`broker.aio`): enqueue, job handles, room waits."""

    def __init__(self, sync: SyncSide) -> None:
        self.sync = sync
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Loop] = weakref.WeakKeyDictionary()
        #: the loop asked for last and its client (one program mostly runs one loop)
        self._last: tuple[Any, Any] = (None, None)

    def _here(self) -> _Loop:
        loop = asyncio.get_running_loop()
        last_loop, last = self._last
        if loop is last_loop:
            return last  # type: ignore[no-any-return]
        here = self._loops.get(loop)
        if here is None:
            conn = self.sync.conn
            with self._errors():
                here = self._loops[loop] = _Loop(_pack_in_c(conn.builders.aio(conn.url, conn.timeout), conn.kind),
                                                 conn.kind)
        self._last = (loop, here)
        return here

    async def _client(self) -> Any:
        """This loop's client, ready for plain commands."""
        here = self._here()
        if here.ready is not None:
            with self._errors():
                await here.ready
        return here.client

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.sync.conn.error(exc) from None

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:  # not self._errors(): this is every call, and a generator context costs per call
            return await self._here().call(name, keys, args)
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.sync.conn.error(exc) from None

    async def aclose(self) -> None:
        """Close this event loop's client (a later call opens a new one)."""
        here = self._loops.pop(asyncio.get_running_loop(), None)
        self._last = (None, None)
        if here is not None:
            await here.client.aclose()

    # -- producing --------------------------------------------------------

    def enqueue_batch(self, jobs: Sequence[NewJob]) -> Awaitable[list[str | BaseException]]:
        """Queue the jobs' script calls for this loop's next flush now (keyed jobs one enqueue.lua
        call each, the others one enqueue_many.lua call per placement); the awaitable gives each
        job's id, or the taskq error of the call that carried it, in order."""
        here, qk = self._here(), self.sync.qk
        sent: list[tuple[asyncio.Future[Any], list[int]]] = []
        runs: dict[Placement, list[int]] = {}
        for i, job in enumerate(jobs):
            if job.key is None:
                runs.setdefault(job.place, []).append(i)
            else:
                keys, args = enqueue_call(qk(job.queue), job)
                sent.append((here.call("enqueue", keys, args), [i]))
        for place, run in runs.items():
            for start in range(0, len(run), ENQUEUE_BATCH):
                part = run[start:start + ENQUEUE_BATCH]
                keys, (args,) = enqueue_many_calls(qk(place.queue), [jobs[i] for i in part])
                sent.append((here.call("enqueue_many", keys, args), part))
        return self._answers(jobs, sent)

    async def _answers(self, jobs: Sequence[NewJob],
                       sent: list[tuple[asyncio.Future[Any], list[int]]]) -> list[str | BaseException]:
        replies = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        out: list[str | BaseException] = [""] * len(jobs)
        for (_, indices), reply in zip(sent, replies, strict=True):
            for i in indices:
                if isinstance(reply, BaseException):
                    out[i] = self.error(reply)
                elif jobs[i].key is not None:
                    out[i] = enqueued(reply, jobs[i], 0)
                else:  # a new id: enqueue_many stores it, or stored it before (a resent batch)
                    out[i] = jobs[i].id
        return out

    def error(self, exc: BaseException) -> BaseException:
        """The taskq error for a redis-py one (anything else as it is)."""
        return self.sync.conn.error(exc) if isinstance(exc, (redis.RedisError, RedisClusterException)) else exc

    async def enqueue(self, job: NewJob, *, max_ready: int = 0) -> str:
        keys, args = enqueue_call(self.sync.qk(job.queue), job, max_ready)
        return enqueued(await self._run("enqueue", keys, args), job, max_ready)

    async def enqueue_many(self, jobs: Sequence[NewJob], *, max_ready: int = 0) -> int:
        if not jobs:
            return 0
        queue = jobs[0].queue
        keys, batches = enqueue_many_calls(self.sync.qk(queue), jobs, max_ready)
        replies = await asyncio.gather(*(self._run("enqueue_many", keys, b) for b in batches))
        return stored(replies, queue, len(jobs), max_ready)

    async def register_queues(self, queues: Sequence[str]) -> None:
        with self._errors():
            await (await self._client()).sadd(self.sync.keys.queues, *queues)

    async def set_retention(self, queue: str, events: int, succeeded: int | None, args: int = 1000) -> None:
        with self._errors():
            await (await self._client()).mset(retention(self.sync.qk(queue), events, succeeded, args))

    async def wait_room(self, queue: str, timeout: float) -> bool:
        with self._errors():
            return await (await self._client()).blpop([self.sync.qk(queue).room],
                                                   timeout=self.sync.conn.block(timeout)) is not None

    # -- event streams (broker/stream.py) ---------------------------------

    async def event_heads(self, queues: Sequence[str]) -> dict[str, str]:
        client = await self._client()
        heads = {}
        with self._errors():
            for q in queues:  # one call per queue: on Cluster each stream is in its own slot
                newest = await client.xrevrange(self.sync.qk(q).events, count=1)
                heads[q] = text(newest[0][0]) if newest else "0-0"
        return {q: h or "0-0" for q, h in heads.items()}

    def read_sets(self, queues: Sequence[str]) -> list[list[str]]:
        return self.sync.read_sets(queues)

    async def read_events(self, positions: Mapping[str, str], timeout: float,
                          count: int = READ_COUNT) -> list[EventRecord]:
        qk = self.sync.qk
        client = await self._client()
        with self._errors():
            reply = await client.xread({qk(q).events: pos for q, pos in positions.items()}, count=count,
                                       block=max(1, int(self.sync.conn.block(timeout) * 1000)))
        return records(reply, {qk(q).events: q for q in positions})

    # -- job handles ------------------------------------------------------

    async def state(self, queue: str, job_id: str, *, watch: bool = False) -> JobState | None:
        k = self.sync.qk(queue)
        if watch:
            reply = await self._run("watch", [k.job(job_id)], [])
            if not reply:
                return None
        else:
            with self._errors():
                reply = await (await self._client()).hmget(k.job(job_id), "status", "result", "error", "reason")
            if reply[0] is None:
                return None
        return job_state(reply)

    async def wait_done(self, queue: str, job_id: str, timeout: float) -> bool:
        k = self.sync.qk(queue)
        key = k.done(job_id)
        with self._errors():
            here = self._here()
            if here.cluster:  # one slot per call: each waits on its own (pooled) connection
                return await (await self._client()).blmove(key, key, self.sync.conn.block(timeout), "RIGHT",
                                                           "LEFT") is not None
            if here.waits is None:
                here.waits = _DoneWaits(self, k.wake(f"aio-{uuid.uuid4().hex[:12]}"))
            return await here.waits.wait(key, timeout)

    async def cancel(self, queue: str, job_id: str) -> Status | None:
        k = self.sync.qk(queue)
        before = await self._run("cancel", [k.job(job_id), k.scheduled, k.done(job_id)],
                                 [job_id, self.sync.policy.result_ttl_ms])
        return status_of(before) if before else None

    async def move(self, queue: str, job_id: str, move: Move) -> tuple[Status | None, bool]:
        return moved(await self._run("move", *move_call(self.sync.qk(queue), job_id, move)))

    async def job(self, queue: str, job_id: str) -> JobRecord | None:
        k = self.sync.qk(queue)
        with self._errors():
            pipe = (await self._client()).pipeline(transaction=False)
            row, due = await pipe.hmget(k.job(job_id), *_FIELDS).zscore(k.scheduled, job_id).execute()
            record = job_record(queue, job_id, row, due)
            if record is not None and record.status is Status.SUCCEEDED and not record.message:
                kept = await (await self._client()).hget(k.args_kept, job_id)  # beside the record
                record = dataclasses.replace(record, message=kept) if kept else record
        return record

    async def job_logs(self, queue: str, job_id: str) -> list[LogEntry]:
        with self._errors():
            rows = await (await self._client()).lrange(self.sync.qk(queue).logs(job_id), 0, -1)
        return [LogEntry.decode(text(r) or "") for r in rows]
