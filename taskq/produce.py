"""Producing: how TaskQ turns calls into jobs in Redis (validate, pack, store), sync and async.

A mixin of TaskQ (taskq/app.py): the app's registry and settings are its own; this module holds
the enqueue paths, one call (`submit`) or many (`submit_many`, `enqueue_many`), and their
asyncio twins on the broker's asyncio client.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any

from taskq.broker import Broker
from taskq.broker.base import TERMINAL, FlowStep
from taskq.errors import ConfigError
from taskq.events import EventKind, JobEvent
from taskq.hooks import Hooks
from taskq.job import Job
from taskq.limits import QueuePolicy, with_room, with_room_async
from taskq.task import TaskBase, TaskOptions

#: what a group of enqueue_many() calls shares: the task, and its calls' (args, kwargs)
_Group = tuple[TaskBase[Any, Any], list[tuple[tuple[Any, ...], dict[str, Any]]]]


#: delay_async calls one event loop checks, packs and sends per turn of the loop
PACK_CHUNK = 100

#: one packed delay_async call: (task, queue, job id, message, priority, the caller's future)
_Sent = tuple[TaskBase[Any, Any], str, str, bytes, int, "asyncio.Future[Job[Any]]"]


class _Line:
    """The delay_async calls of one event loop waiting to be packed and sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[tuple[Any, ...]] = []
        self.draining = False
        self.task: asyncio.Task[None] | None = None
        #: the tasks awaiting replies of chunks sent (held: a pending task is only weakly referenced)
        self.answers: set[asyncio.Task[None]] = set()


class Producing:
    """The enqueue half of TaskQ."""

    max_message_bytes: int
    queue_policies: dict[str, QueuePolicy]
    hooks: Hooks
    after_submit: Callable[[str], None] | None
    tasks: dict[str, TaskBase[Any, Any]]
    _known_queues: set[str]
    #: per event loop, the delay_async calls waiting in line (submit_async)
    _submits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Line]
    #: the line used last (most apps have one event loop)
    _last_line: _Line | None = None

    @property
    def broker(self) -> Broker:
        raise NotImplementedError  # TaskQ's

    def submit(
        self, task: TaskBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
        queue: str, priority: int, delay: float, at: dt.datetime | None, key: str | None,
        opts: TaskOptions | None = None, ordering_key: str | None = None,
    ) -> Job[Any]:
        """Validate, pack and enqueue one call (used by TaskCall.delay)."""
        new_id, body = self._pack_call(task, args, kwargs, queue, priority, key, opts)
        self._register_queue(queue)
        broker, delay_ms, at_ms = self.broker, int(delay * 1000), _at_ms(at)
        job_id = with_room(self.queue_policies.get(queue), broker, lambda limit: broker.enqueue(
            queue, new_id, body, priority, delay_ms, at_ms, key, max_ready=limit, order=ordering_key,
            gate=task.gate, task=task.name))
        self._enqueued(task, queue, [job_id])
        if self.after_submit is not None:
            self.after_submit(queue)
        return Job(broker, queue, job_id, self.hooks)

    async def submit_async(
        self, task: TaskBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
        queue: str, priority: int, delay: float, at: dt.datetime | None, key: str | None,
        opts: TaskOptions | None = None, ordering_key: str | None = None,
    ) -> Job[Any]:
        """submit() on the event loop's client (used by TaskCall.delay_async). The call only
        waits in line here: the loop's drain checks, packs and sends PACK_CHUNK calls per turn of
        the loop, so a gather of thousands never holds the loop for all of them at once."""
        if queue not in self._known_queues or queue in self.queue_policies or self.after_submit is not None:
            return await self._submit_async_now(task, args, kwargs, queue=queue, priority=priority, delay=delay,
                                                at=at, key=key, opts=opts, ordering_key=ordering_key)
        loop = asyncio.get_running_loop()
        line = self._last_line
        if line is None or line.loop is not loop:  # WeakKeyDictionary lookups cost more than the rest
            line = self._submits.get(loop)
            if line is None:
                line = self._submits[loop] = _Line(loop)
            self._last_line = line
        future: asyncio.Future[Job[Any]] = loop.create_future()
        line.calls.append((task, args, kwargs, queue, priority, delay, at, key, opts, ordering_key, future))
        if not line.draining:
            line.draining = True
            line.task = loop.create_task(self._drain(line))  # held: a pending task is only weakly referenced
        return await future

    async def _drain(self, line: _Line) -> None:
        """Check, pack and send the calls waiting in line, PACK_CHUNK per turn of the loop."""
        try:
            while line.calls:
                batch, line.calls = line.calls[:PACK_CHUNK], line.calls[PACK_CHUNK:]
                # the replies are awaited aside: the next chunk is packed while Redis stores this one
                answers = line.loop.create_task(self._send_batch(batch))
                line.answers.add(answers)
                answers.add_done_callback(line.answers.discard)
                await asyncio.sleep(0)  # the loop's other work runs between chunks
        finally:
            line.draining = False

    def _send_batch(self, batch: list[tuple[Any, ...]]) -> Coroutine[Any, Any, None]:
        """One chunk of the line, packed and handed to the loop's client now: calls without a
        dedup key go out as one enqueue_many call per (queue, due time, ordering key, task gate),
        as map() sends them, keyed calls one by one. Returns what settles their futures."""
        aio = self.broker.aio
        groups: dict[tuple[str, int, int, str | None, TaskBase[Any, Any]], list[_Sent]] = {}
        keyed: list[tuple[_Sent, asyncio.Future[Any]]] = []
        for task, args, kwargs, queue, priority, delay, at, key, opts, order, future in batch:
            if future.done():  # its caller was cancelled
                continue
            try:
                new_id, body = self._pack_call(task, args, kwargs, queue, priority, key, opts)
                delay_ms, at_ms = int(delay * 1000), _at_ms(at)
                if key is None:
                    groups.setdefault((queue, delay_ms, at_ms, order, task), []).append(
                        (task, queue, new_id, body, priority, future))
                else:
                    reply = aio.enqueue_soon(queue, new_id, body, priority, delay_ms, at_ms, key, order=order,
                                             gate=task.gate, task=task.name)
                    keyed.append(((task, queue, new_id, body, priority, future), reply))
            except Exception as exc:
                future.set_exception(exc)
        stores: list[tuple[list[_Sent], asyncio.Future[Any]]] = []
        for (queue, delay_ms, at_ms, order, task), sent in groups.items():
            try:
                stores.append((sent, aio.enqueue_many_soon(queue, [(s[2], s[3], s[4]) for s in sent], delay_ms=delay_ms,
                                                           at_ms=at_ms, order=order, gate=task.gate, task=task.name)))
            except Exception as exc:  # e.g. no client for this loop: every caller of the group hears it
                for one in sent:
                    self._answer(one, exc, _new_id)
        return self._settle_batch(keyed, stores)

    async def _settle_batch(self, keyed: list[tuple[_Sent, asyncio.Future[Any]]],
                            stores: list[tuple[list[_Sent], asyncio.Future[Any]]]) -> None:
        """Each call's future gets its Job, or the error of the script call that carried it."""
        aio = self.broker.aio
        replies = await asyncio.gather(*(r for _, r in keyed), *(r for _, r in stores), return_exceptions=True)
        for (one, _), answer in zip(keyed, replies, strict=False):
            self._answer(one, answer, lambda reply, new_id: aio.enqueued(reply, new_id))
        for (sent, _), answer in zip(stores, replies[len(keyed):], strict=True):
            if isinstance(answer, BaseException):
                for one in sent:
                    self._answer(one, answer, _new_id)
                continue
            broker, hooked = self.broker, self.hooks.wants(EventKind.ENQUEUED)
            for task, queue, new_id, _, _, future in sent:
                if not future.done():
                    if hooked:
                        self._enqueued(task, queue, [new_id])
                    future.set_result(Job(broker, queue, new_id, self.hooks))

    def _answer(self, sent: _Sent, answer: Any, job_id_of: Callable[[Any, str], str]) -> None:
        """Settle one delay_async call's future with its Job, or with the error of its store."""
        task, queue, new_id, _, _, future = sent
        if future.done():
            return
        if isinstance(answer, BaseException):
            future.set_exception(self.broker.aio.error(answer))
            return
        job_id = job_id_of(answer, new_id)
        self._enqueued(task, queue, [job_id])
        future.set_result(Job(self.broker, queue, job_id, self.hooks))

    async def _submit_async_now(
        self, task: TaskBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], *,
        queue: str, priority: int, delay: float, at: dt.datetime | None, key: str | None,
        opts: TaskOptions | None = None, ordering_key: str | None = None,
    ) -> Job[Any]:
        new_id, body = self._pack_call(task, args, kwargs, queue, priority, key, opts)
        aio = self.broker.aio
        await self._register_queue_async(queue)
        delay_ms, at_ms = int(delay * 1000), _at_ms(at)
        policy = self.queue_policies.get(queue)
        if policy is None:  # the common case: no coroutine of with_room_async's per call
            job_id = await aio.enqueue(queue, new_id, body, priority, delay_ms, at_ms, key, order=ordering_key,
                                       gate=task.gate, task=task.name)
        else:
            job_id = await with_room_async(policy, aio, lambda limit: aio.enqueue(
                queue, new_id, body, priority, delay_ms, at_ms, key, max_ready=limit, order=ordering_key,
                gate=task.gate, task=task.name))
        self._enqueued(task, queue, [job_id])
        await self._after_submit_async(queue)
        return Job(self.broker, queue, job_id, self.hooks)

    async def _after_submit_async(self, queue: str) -> None:
        """The after_submit callback (eager mode's drain) in a thread: it blocks, the loop must not."""
        if self.after_submit is not None:
            await asyncio.to_thread(self.after_submit, queue)

    def _pack_call(self, task: TaskBase[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any], queue: str,
                   priority: int, key: str | None, opts: TaskOptions | None) -> tuple[str, bytes]:
        """A new job id and its message, validated before any I/O."""
        task.check_args(args, kwargs)
        new_id = new_job_id()
        trace = None if self.hooks.trace is None else self.hooks.trace(task.name, queue)
        return new_id, task.message(new_id, args, kwargs, queue=queue, priority=priority, enqueued_at=time.time(),
                                    key=key, limit=self.max_message_bytes, opts=opts, trace=trace)

    def new_flow_id(self) -> str:
        return new_job_id()

    def job_handle(self, queue: str, job_id: str) -> Job[Any]:
        return Job(self.broker, queue, job_id, self.hooks)

    def submit_steps(self, steps: Sequence[tuple[str, FlowStep]], tasks: Sequence[TaskBase[Any, Any]]) -> None:
        """Store a workflow's steps (taskq/workflow.py): those waiting for parents first, then the
        first steps, so no step can end before its successors exist."""
        for queue in {q for q, _ in steps}:
            self._register_queue(queue)
        waiting = [s for s in steps if s[1].parents]
        first = [s for s in steps if not s[1].parents]
        if len({q for q, _ in steps}) == 1:
            self.broker.stage(waiting + first)  # one script call stores them in this order
        else:  # one slot at a time: every successor is stored before any first step
            self.broker.stage(waiting)
            self.broker.stage(first)
        for (queue, step), task in zip(steps, tasks, strict=True):
            if step.parents == 0:
                self._enqueued(task, queue, [step.id])
        if self.after_submit is not None:  # eager mode: run the flow's queues until every step ended
            queues = list(dict.fromkeys(q for q, _ in steps))
            for _ in range(len(steps)):
                for queue in queues:
                    self.after_submit(queue)
                states = [self.broker.state(q, step.id) for q, step in steps]
                if all(s is None or s.status in TERMINAL for s in states):
                    break

    def _enqueued(self, task: TaskBase[Any, Any], queue: str, job_ids: Iterable[str]) -> None:
        """The "enqueued" hooks of new jobs."""
        if self.hooks.wants(EventKind.ENQUEUED):
            for job_id in job_ids:
                self.hooks.dispatch(JobEvent(EventKind.ENQUEUED, job_id, task.name, queue, 1))

    def submit_many(
        self, task: TaskBase[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]], *,
        queue: str, priority: int, delay: float, at: dt.datetime | None, opts: TaskOptions | None = None,
        ordering_key: str | None = None,
    ) -> list[Job[Any]]:
        """Validate and pack every call, then store them in batches (used by map/starmap).
        Raises before writing anything if any call is bad."""
        return self._store_many(task, queue, self._pack_calls(task, calls, queue, priority, opts), delay, at,
                                order=ordering_key)

    async def submit_many_async(
        self, task: TaskBase[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]], *,
        queue: str, priority: int, delay: float, at: dt.datetime | None, opts: TaskOptions | None = None,
        ordering_key: str | None = None,
    ) -> list[Job[Any]]:
        """submit_many() on the event loop's client (used by map_async)."""
        jobs = self._pack_calls(task, calls, queue, priority, opts)
        aio = self.broker.aio
        await self._register_queue_async(queue)
        delay_ms, at_ms = int(delay * 1000), _at_ms(at)
        await with_room_async(self.queue_policies.get(queue), aio, lambda limit: aio.enqueue_many(
            queue, jobs, delay_ms=delay_ms, at_ms=at_ms, max_ready=limit, order=ordering_key, gate=task.gate,
            task=task.name))
        self._enqueued(task, queue, (job_id for job_id, _, _ in jobs))
        await self._after_submit_async(queue)
        return [Job(self.broker, queue, job_id, self.hooks) for job_id, _, _ in jobs]

    def enqueue_many(self, calls: Iterable[tuple[Any, ...]]) -> list[Job[Any]]:
        """Enqueue many calls of any tasks in batches: each item is (task, args) or
        (task, args, kwargs), with the task's default options. Nothing is written if any
        call is bad (not a task of this app, wrong arguments, not msgpack-able)."""
        groups: dict[tuple[str, str, int], _Group] = {}
        order: list[tuple[tuple[str, str, int], int]] = []
        for item in calls:
            task, args, kwargs = (*item, {}) if len(item) == 2 else item
            if not isinstance(task, TaskBase) or self.tasks.get(task.name) is not task:
                raise ConfigError(f"enqueue_many: {task!r} is not a task of this app")
            key = (task.name, task.opts.queue, task.opts.priority)
            entry = groups.setdefault(key, (task, []))
            order.append((key, len(entry[1])))
            entry[1].append((tuple(args), dict(kwargs)))
        packed = {key: self._pack_calls(task, items, key[1], key[2]) for key, (task, items) in groups.items()}
        done = {key: self._store_many(groups[key][0], key[1], jobs, 0, None)
                for key, jobs in packed.items()}
        return [done[key][index] for key, index in order]

    def _pack_calls(self, task: TaskBase[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                    queue: str, priority: int, opts: TaskOptions | None = None) -> list[tuple[str, bytes, int]]:
        now = time.time()
        jobs: list[tuple[str, bytes, int]] = []
        limit, message, check = self.max_message_bytes, task.message, task.check_args
        trace = None if self.hooks.trace is None else self.hooks.trace(task.name, queue)  # one for the call
        ids = _job_ids()
        for args, kwargs in calls:
            check(args, kwargs)
            new_id = next(ids)
            jobs.append((new_id, message(new_id, args, kwargs, queue=queue, priority=priority, enqueued_at=now,
                                         limit=limit, opts=opts, trace=trace), priority))
        return jobs

    def _store_many(self, task: TaskBase[Any, Any], queue: str, jobs: list[tuple[str, bytes, int]], delay: float,
                    at: dt.datetime | None, *, order: str | None = None) -> list[Job[Any]]:
        self._register_queue(queue)
        gate = task.gate
        broker, delay_ms, at_ms = self.broker, int(delay * 1000), _at_ms(at)
        with_room(self.queue_policies.get(queue), broker, lambda limit: broker.enqueue_many(
            queue, jobs, delay_ms=delay_ms, at_ms=at_ms, max_ready=limit, order=order, gate=gate, task=task.name))
        self._enqueued(task, queue, (job_id for job_id, _, _ in jobs))
        if self.after_submit is not None:
            self.after_submit(queue)
        return [Job(broker, queue, job_id, self.hooks) for job_id, _, _ in jobs]

    async def _register_queue_async(self, queue: str) -> None:
        if queue not in self._known_queues:
            self._known_queues.add(queue)  # now: the calls made meanwhile do not register it again
            try:
                await self.broker.aio.register_queues([queue])
                await self.broker.aio.set_retention(queue, *self._retention(queue))
            except BaseException:
                self._known_queues.discard(queue)
                raise

    async def aclose(self) -> None:
        """Close the running event loop's Redis connections (a later async call opens new ones)."""
        await self.broker.aio.aclose()

    def _register_queue(self, queue: str) -> None:
        """Tell Redis about a queue once per app (so `taskq status` lists it)."""
        if queue not in self._known_queues:
            self.register_queues([queue])

    def register_queues(self, queues: Sequence[str]) -> None:
        """Tell Redis about the queues (so `taskq status` lists them), how many events and
        succeeded records each keeps (app.queue(events=, keep_succeeded=)); every worker does at
        start, a producer at its first enqueue."""
        broker = self.broker
        broker.register_queues(queues)
        for queue in queues:
            broker.set_retention(queue, *self._retention(queue))
        self._known_queues.update(queues)

    def _retention(self, queue: str) -> tuple[int, int | None]:
        """What the queue keeps, as app.queue() declared it (or the defaults): events, succeeded."""
        policy = self.queue_policies.get(queue) or QueuePolicy(queue)
        return policy.events, policy.keep_succeeded


def _new_id(_reply: Any, new_id: str) -> str:
    """The id of a job stored by enqueue_many (always the new one: it has no dedup key)."""
    return new_id


def new_job_id() -> str:
    """32 random hex digits (as uuid4().hex reads, at a fraction of its cost)."""
    return os.urandom(16).hex()


def _job_ids() -> Iterator[str]:
    """new_job_id()s, drawn 256 at a time (one system call each)."""
    while True:
        pool = os.urandom(16 * 256).hex()
        for i in range(0, len(pool), 32):
            yield pool[i:i + 32]


def _at_ms(at: dt.datetime | None) -> int:
    """A due time as unix ms (0 = none); a naive datetime is local time."""
    if at is None:
        return 0
    stamp = at if at.tzinfo is not None else at.astimezone()
    return max(1, int(stamp.timestamp() * 1000))
