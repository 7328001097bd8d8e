"""Producing: how TaskQ turns calls into jobs in Redis (validate, pack, store), sync and async.

A mixin of TaskQ (taskq/app.py): the app's registry and settings are its own; this module holds
the enqueue paths, one call (`submit`) or many (`submit_many`, `enqueue_many`), and their
asyncio twins on the broker's asyncio client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any

from taskq import workflow
from taskq.broker import Broker
from taskq.broker.base import TERMINAL, FlowStep, NewJob, Placement
from taskq.errors import ConfigError
from taskq.events import EventKind, JobEvent
from taskq.hooks import Hooks
from taskq.job import Job
from taskq.limits import QueuePolicy, with_room, with_room_async
from taskq.options import check_partition
from taskq.outbox import ASYNC_REFUSED, Outbox
from taskq.outbox import active as outbox_active
from taskq.task import Signature, TaskBase, TaskCall

#: delay_async calls one event loop checks, packs and sends per turn of the loop
PACK_CHUNK = 100


class _Line:
    """The delay_async calls of one event loop waiting to be packed and sent."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: (call, args, kwargs, the caller's future) each
        self.calls: list[tuple[TaskCall[Any, Any], tuple[Any, ...], dict[str, Any], asyncio.Future[Job[Any]]]] = []
        self.draining = False
        self.task: asyncio.Task[None] | None = None
        #: the tasks awaiting replies of chunks sent (held: a pending task is only weakly referenced)
        self.answers: set[asyncio.Task[None]] = set()


class Producing:
    """The enqueue half of TaskQ."""

    max_message_bytes: int
    namespace: str
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

    def outbox(self, conn: Any) -> Outbox:
        """`with app.outbox(conn):` every enqueue inside becomes a row of taskq_outbox written
        through `conn` (DB-API 2, SQLAlchemy, Django) in its transaction, not a Redis call;
        `taskq relay` moves committed rows to Redis as jobs with the ids returned (taskq/outbox.py)."""
        return Outbox(conn)

    def submit(self, call: TaskCall[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job[Any]:
        """Validate, pack and enqueue one call (used by TaskCall.delay)."""
        return self._submit_packed(call, self._pack_call(call, args, kwargs))

    def _submit_packed(self, call: TaskCall[Any, Any], job: NewJob) -> Job[Any]:
        """Store one packed call (its queue's backpressure applies), its hooks, eager mode's run;
        inside app.outbox(), a row instead."""
        box = outbox_active()
        if box is not None:
            box.add_jobs(self.namespace, [job])
            return Job(self.broker, call.queue, job.id, self.hooks)
        self._register_queue(call.queue)
        broker = self.broker
        job_id = with_room(self.queue_policies.get(call.queue), broker,
                           lambda limit: broker.enqueue(job, max_ready=limit))
        self._enqueued(call.task.name, call.queue, [job_id])
        if self.after_submit is not None:
            self.after_submit(call.queue)
        return self._handle(call, job_id, broker)

    async def submit_async(self, call: TaskCall[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job[Any]:
        """submit() on the event loop's client (used by TaskCall.delay_async). The call only
        waits in line here: the loop's drain checks, packs and sends PACK_CHUNK calls per turn of
        the loop, so a gather of thousands never holds the loop for all of them at once."""
        if outbox_active() is not None:
            raise ConfigError(ASYNC_REFUSED)
        queue = call.queue
        if queue not in self._known_queues or queue in self.queue_policies or self.after_submit is not None:
            return await self._submit_async_now(call, args, kwargs)
        loop = asyncio.get_running_loop()
        line = self._last_line
        if line is None or line.loop is not loop:  # WeakKeyDictionary lookups cost more than the rest
            line = self._submits.get(loop)
            if line is None:
                line = self._submits[loop] = _Line(loop)
            self._last_line = line
        future: asyncio.Future[Job[Any]] = loop.create_future()
        line.calls.append((call, args, kwargs, future))
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

    def _send_batch(self, batch: list[tuple[TaskCall[Any, Any], tuple[Any, ...], dict[str, Any],
                                            asyncio.Future[Job[Any]]]]) -> Coroutine[Any, Any, None]:
        """One chunk of the line, packed and handed to the loop's client now (it pipelines them:
        one enqueue_many per placement, keyed calls one by one). Returns what settles their futures."""
        jobs: list[NewJob] = []
        waiting: list[tuple[TaskCall[Any, Any], asyncio.Future[Job[Any]]]] = []
        for call, args, kwargs, future in batch:
            if future.done():  # its caller was cancelled
                continue
            try:
                jobs.append(self._pack_call(call, args, kwargs))
                waiting.append((call, future))
            except Exception as exc:
                future.set_exception(exc)
        try:
            answers = self.broker.aio.enqueue_batch(jobs)
        except Exception as exc:  # e.g. no client for this loop: every caller hears it
            for _, future in waiting:
                if not future.done():
                    future.set_exception(exc)
            return asyncio.sleep(0)
        return self._settle_batch(waiting, answers)

    async def _settle_batch(self, waiting: list[tuple[TaskCall[Any, Any], asyncio.Future[Job[Any]]]],
                            answers: Awaitable[list[str | BaseException]]) -> None:
        """Each call's future gets its Job, or the error of the script call that carried it."""
        broker, hooked = self.broker, self.hooks.wants(EventKind.ENQUEUED)
        for (call, future), answer in zip(waiting, await answers, strict=True):
            if future.done():
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
                continue
            if hooked:
                self._enqueued(call.task.name, call.queue, [answer])
            future.set_result(self._handle(call, answer, broker))

    async def _submit_async_now(self, call: TaskCall[Any, Any], args: tuple[Any, ...],
                                kwargs: dict[str, Any]) -> Job[Any]:
        return await self._submit_packed_async(call, self._pack_call(call, args, kwargs))

    async def _submit_packed_async(self, call: TaskCall[Any, Any], job: NewJob) -> Job[Any]:
        aio = self.broker.aio
        await self._register_queue_async(call.queue)
        policy = self.queue_policies.get(call.queue)
        if policy is None:  # the common case: no coroutine of with_room_async's per call
            job_id = await aio.enqueue(job)
        else:
            job_id = await with_room_async(policy, aio, lambda limit: aio.enqueue(job, max_ready=limit))
        self._enqueued(call.task.name, call.queue, [job_id])
        await self._after_submit_async(call.queue)
        return self._handle(call, job_id)

    async def _after_submit_async(self, queue: str) -> None:
        """The after_submit callback (eager mode's drain) in a thread: it blocks, the loop must not."""
        if self.after_submit is not None:
            await asyncio.to_thread(self.after_submit, queue)

    def _pack_call(self, call: TaskCall[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> NewJob:
        """The call as a job to store (a new id, its message, its placement), validated before any I/O:
        the one place a call becomes a stored job."""
        task = call.task
        task.check_args(args, kwargs)
        new_id = new_job_id()
        trace = None if self.hooks.trace is None else self.hooks.trace(task.name, call.queue)
        body = task.message(new_id, args, kwargs, queue=call.queue, priority=call.priority, enqueued_at=time.time(),
                            key=call.key, limit=self.max_message_bytes, opts=call.opts, trace=trace)
        return NewJob(call.place, new_id, body, call.priority, call.key)

    def submit_flow(self, step: Signature[Any]) -> list[Job[Any]]:
        """A one-step flow: Signature.delay() (chains, groups and chords store through workflow.submit)."""
        return workflow.submit(step)

    def new_flow_id(self) -> str:
        return new_job_id()

    def job_handle(self, queue: str, job_id: str, task: TaskBase[Any, Any] | None = None) -> Job[Any]:
        types = None if task is None else task.types
        return Job(self.broker, queue, job_id, self.hooks, None if types is None else types.rebuild)

    def _handle(self, call: TaskCall[Any, Any], job_id: str, broker: Broker | None = None) -> Job[Any]:
        """The Job of a call's new job (it rebuilds a model or dataclass result, taskq/models.py)."""
        types = call.task.types
        return Job(broker or self.broker, call.queue, job_id, self.hooks, None if types is None else types.rebuild)

    def submit_steps(self, steps: Sequence[tuple[str, FlowStep]], tasks: Sequence[TaskBase[Any, Any]]) -> None:
        """Store a workflow's steps (taskq/workflow.py): those waiting for parents first, then the
        first steps, so no step can end before its successors exist. Inside app.outbox(), one row
        holding every step instead."""
        box = outbox_active()
        if box is not None:
            box.add_flow(self.namespace, steps)
            return
        for queue in {q for q, _ in steps}:
            self._register_queue(queue)
        stage_steps(self.broker, steps)
        for (queue, step), task in zip(steps, tasks, strict=True):
            if step.parents == 0:
                self._enqueued(task.name, queue, [step.id])
        if self.after_submit is not None:  # eager mode: run the flow's queues until every step ended
            queues = list(dict.fromkeys(q for q, _ in steps))
            for _ in range(len(steps)):
                for queue in queues:
                    self.after_submit(queue)
                states = [self.broker.state(q, step.id) for q, step in steps]
                if all(s is None or s.status in TERMINAL for s in states):
                    break

    def _enqueued(self, task: str, queue: str, job_ids: Iterable[str]) -> None:
        """The "enqueued" hooks of new jobs."""
        if self.hooks.wants(EventKind.ENQUEUED):
            for job_id in job_ids:
                self.hooks.dispatch(JobEvent(EventKind.ENQUEUED, job_id, task, queue, 1))

    def submit_many(self, call: TaskCall[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                    partition_of: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[Any]]:
        """Validate and pack every call, then store them in batches (used by map/starmap; with
        partition_of, each job's partition from its arguments). Raises before writing anything if
        any call is bad."""
        jobs = self._pack_calls(call, calls, partition_of)
        if call.key is not None:  # debounced calls of one key (task.py): in turn, each moves the key's job
            return [self._submit_packed(call, job) for job in jobs]
        self._store_jobs(call.queue, jobs)
        broker = self.broker
        return [self._handle(call, job.id, broker) for job in jobs]

    async def submit_many_async(self, call: TaskCall[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                                partition_of: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[Any]]:
        """submit_many() on the event loop's client (used by map_async)."""
        if outbox_active() is not None:
            raise ConfigError(ASYNC_REFUSED)
        jobs = self._pack_calls(call, calls, partition_of)
        if call.key is not None:  # debounced calls of one key, in turn (as submit_many)
            return [await self._submit_packed_async(call, job) for job in jobs]
        aio = self.broker.aio
        await self._register_queue_async(call.queue)
        stored = by_placement(jobs)
        await with_room_async(self.queue_policies.get(call.queue), aio,
                              lambda limit: aio.enqueue_many(stored, max_ready=limit))
        self._enqueued(call.task.name, call.queue, (job.id for job in jobs))
        await self._after_submit_async(call.queue)
        broker = self.broker
        return [self._handle(call, job.id, broker) for job in jobs]

    def enqueue_many(self, calls: Iterable[tuple[Any, ...] | Signature[Any]]) -> list[Job[Any]]:
        """Enqueue many calls of any tasks in batches: each item is (task, args), (task, args,
        kwargs) with the task's default options, or a signature with options of its own, e.g.
        `deliver.options(partition=host).s(activity)`. One round trip per queue; nothing is
        written if any call is bad (not a task of this app, wrong arguments, not msgpack-able)."""
        groups: dict[int, tuple[TaskCall[Any, Any], list[tuple[tuple[Any, ...], dict[str, Any]]]]] = {}
        order: list[tuple[int, int]] = []
        for item in calls:
            if isinstance(item, Signature):
                call, args, kwargs = item.call, item.args, item.kwargs
            else:
                task, args, kwargs = (*item, {}) if len(item) == 2 else item
                call = task.defaults if isinstance(task, TaskBase) else task
            if not isinstance(call, TaskCall) or self.tasks.get(call.task.name) is not call.task:
                raise ConfigError(f"enqueue_many: {call!r} is not a task of this app")
            entry = groups.setdefault(id(call), (call, []))  # by identity: a task's defaults are one object
            order.append((id(call), len(entry[1])))
            entry[1].append((tuple(args), dict(kwargs)))
        packed = {key: (call, self._pack_calls(call, items)) for key, (call, items) in groups.items()}
        for queue in dict.fromkeys(call.queue for call, _ in packed.values()):  # one store per queue
            self._store_jobs(queue, [job for call, jobs in packed.values() if call.queue == queue for job in jobs])
        return [self._handle(packed[key][0], packed[key][1][index].id) for key, index in order]

    def _pack_calls(self, call: TaskCall[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                    partition_of: Callable[[tuple[Any, ...]], str] | None = None) -> list[NewJob]:
        now = time.time()
        jobs: list[NewJob] = []
        task, place, priority, queue, opts, key = call.task, call.place, call.priority, call.queue, call.opts, call.key
        limit, message, check = self.max_message_bytes, task.message, task.check_args
        trace = None if self.hooks.trace is None else self.hooks.trace(task.name, queue)  # one for the call
        ids = _job_ids()
        places: dict[str, Placement] = {}
        for args, kwargs in calls:
            check(args, kwargs)
            new_id = next(ids)
            if partition_of is not None:
                place = _placed(places, call.place, partition_of(args))
            jobs.append(NewJob(place, new_id, message(new_id, args, kwargs, queue=queue, priority=priority,
                                                      enqueued_at=now, limit=limit, opts=opts, trace=trace, key=key),
                               priority, key))
        return jobs

    def _store_jobs(self, queue: str, jobs: list[NewJob]) -> None:
        """Store new jobs of one queue (ordered by placement: a batch per placement), with the
        queue's backpressure; their "enqueued" hooks; eager mode runs them. Inside app.outbox(),
        rows instead."""
        box = outbox_active()
        if box is not None:
            box.add_jobs(self.namespace, jobs)
            return
        self._register_queue(queue)
        broker, stored = self.broker, by_placement(jobs)
        with_room(self.queue_policies.get(queue), broker, lambda limit: broker.enqueue_many(stored, max_ready=limit))
        if self.hooks.wants(EventKind.ENQUEUED):
            for job in jobs:
                self._enqueued(job.place.task or "", queue, [job.id])
        if self.after_submit is not None:
            self.after_submit(queue)

    async def _register_queue_async(self, queue: str) -> None:
        if queue not in self._known_queues:
            self._known_queues.add(queue)  # now: the calls made meanwhile do not register it again
            try:
                await self.broker.aio.register_queues([queue])
                await self.broker.aio.set_retention(queue, *self._retention(queue))
                policy = self.queue_policies.get(queue)
                if policy is not None:  # rare (once per declared queue): the sync client, off the loop
                    await asyncio.to_thread(self.broker.set_partitioning, queue, policy.fair, policy.partition_limits)
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
        succeeded records each keeps (app.queue(events=, keep_succeeded=)) and, for a queue the app
        declares, its partitions' limits and fairness; every worker does at start, a producer at
        its first enqueue."""
        broker = self.broker
        broker.register_queues(queues)
        for queue in queues:
            broker.set_retention(queue, *self._retention(queue))
            policy = self.queue_policies.get(queue)
            if policy is not None:  # only a queue the app declares: another app's producer leaves it be
                broker.set_partitioning(queue, policy.fair, policy.partition_limits)
        self._known_queues.update(queues)

    def _retention(self, queue: str) -> tuple[int, int | None, int]:
        """What the queue keeps, as app.queue() declared it (or the defaults): events, succeeded
        records, and how many of those keep their arguments."""
        policy = self.queue_policies.get(queue) or QueuePolicy(queue)
        return policy.events, policy.keep_succeeded, policy.keep_args


def stage_steps(broker: Broker, steps: Sequence[tuple[str, FlowStep]]) -> None:
    """Store a workflow's steps, those waiting for parents first, so no step can end before its
    successors exist (the producer's, and the outbox relay's for a workflow's row)."""
    waiting = [s for s in steps if s[1].parents]
    first = [s for s in steps if not s[1].parents]
    if len({q for q, _ in steps}) == 1:
        broker.stage(waiting + first)  # one script call stores them in this order
    else:  # one slot at a time: every successor is stored before any first step
        broker.stage(waiting)
        broker.stage(first)


def _placed(places: dict[str, Placement], place: Placement, partition: str) -> Placement:
    """The call's placement with a job's own partition (one object per partition)."""
    found = places.get(partition)
    if found is None:
        check_partition(partition)
        found = places[partition] = dataclasses.replace(place, partition=partition)
    return found


def by_placement(jobs: list[NewJob]) -> list[NewJob]:
    """The jobs with equal placements together (stable: in order within one), so a store sends a
    batch per placement, not one per change of partition."""
    if not jobs or all(job.place is jobs[0].place for job in jobs):
        return jobs
    first: dict[Placement, int] = {}
    return sorted(jobs, key=lambda job: first.setdefault(job.place, len(first)))


def new_job_id() -> str:
    """32 random hex digits (as uuid4().hex reads, at a fraction of its cost)."""
    return os.urandom(16).hex()


def _job_ids() -> Iterator[str]:
    """new_job_id()s, drawn 256 at a time (one system call each)."""
    while True:
        pool = os.urandom(16 * 256).hex()
        for i in range(0, len(pool), 32):
            yield pool[i:i + 32]
