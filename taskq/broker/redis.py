"""RedisBroker: the broker contract (broker/base.py) on Redis, or fakeredis for memory://.

This module holds the hot path (produce, consume, settle) and job handles; the operator reads,
worker registry and cron schedules are in broker/admin.py. Every job move is one Lua script.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskq.broker.admin import Admin
from taskq.broker.base import (
    DEFAULT_NAMESPACE,
    Delivery,
    Fetched,
    JobState,
    Outcome,
    Policy,
    Recovered,
    Refill,
    Settled,
    Settlement,
    Status,
    TaskLimit,
)
from taskq.broker.calls import (
    enqueue_call,
    enqueue_many_calls,
    enqueued,
    job_state,
    move_call,
    moved,
    status_of,
    stored,
)
from taskq.broker.client import TIMEOUT, Connection, text
from taskq.broker.history import History
from taskq.broker.keys import Keys, QueueKeys
from taskq.broker.partitions import Partitions
from taskq.broker.placement import Move, NewJob
from taskq.broker.schedules import ScheduleStore
from taskq.broker.steps import Steps
from taskq.broker.stream import Stream
from taskq.broker.waits import SlotWaits

if TYPE_CHECKING:
    from taskq.broker.aio import AsyncBroker

#: most outcomes recorded by one settle script call
SETTLE_BATCH = 256
#: settle.lua's reply codes (a tuple lookup: Enum(code) costs about a microsecond per outcome)
_SETTLED = (Settled.LOST, Settled.DONE, Settled.CANCELLED)


class RedisBroker(Admin, History, Stream, Steps, Partitions, ScheduleStore):
    """All of taskq's Redis I/O. Thread-safe: redis-py pools connections per thread.

    Args:
        url: redis://, rediss://, unix://, redis+cluster://, redis+sentinel:// (and rediss+ forms),
            or memory://NAME (fakeredis in this process).
        namespace: first part of every key; brokers of two namespaces never see each other.
        timeout: seconds one Redis call may take before BrokerUnavailable.
        policy: lease length and retention (every script that leases or ends a job applies it).
    """

    def __init__(self, url: str, *, namespace: str = DEFAULT_NAMESPACE, timeout: float = TIMEOUT,
                 policy: Policy | None = None) -> None:
        self.url = url
        self.namespace = namespace
        self.policy = policy or Policy()
        self.keys = Keys(namespace)
        self.conn = Connection(url, timeout)
        self._queue_keys: dict[str, QueueKeys] = {}
        self._groups: dict[tuple[tuple[str, ...], str], list[list[str]]] = {}
        #: notify key -> its queue
        self._notified: dict[str, str] = {}
        self._waits: dict[str, SlotWaits] = {}

    @property
    def client(self) -> Any:
        """The raw redis-py (or fakeredis) client, for tests and tools; taskq uses the contract."""
        return self.conn.client

    def qk(self, queue: str) -> QueueKeys:
        """The key names of a queue, built once."""
        k = self._queue_keys.get(queue)
        if k is None:
            k = self._queue_keys[queue] = self.keys.queue(queue)
        return k

    def ping(self) -> None:
        with self.conn.errors():
            self.conn.client.ping()  # on a node of a Redis Cluster, its connect fails (urls.NotAClusterNode)

    def close(self) -> None:
        for waits in self._waits.values():
            waits.close()
        self.conn.close()

    # -- producing --------------------------------------------------------

    @functools.cached_property
    def aio(self) -> AsyncBroker:
        """The same broker for code on an event loop (redis-py's asyncio client)."""
        from taskq.broker.aio import AsyncBroker

        return AsyncBroker(self)

    def enqueue(self, job: NewJob, *, max_ready: int = 0) -> str:
        keys, args = enqueue_call(self.qk(job.queue), job, max_ready)
        return enqueued(self.conn.run("enqueue", keys, args), job, max_ready)

    def enqueue_many(self, jobs: Sequence[NewJob], *, max_ready: int = 0) -> int:
        if not jobs:
            return 0
        queue = jobs[0].queue
        keys, batches = enqueue_many_calls(self.qk(queue), jobs, max_ready)
        return stored(self.conn.pipelined("enqueue_many", keys, batches), queue, len(jobs), max_ready)

    def wait_room(self, queue: str, timeout: float) -> bool:
        key = self.qk(queue).room
        with self.conn.errors():
            return self.conn.client.blpop([key], timeout=self.conn.block(timeout)) is not None

    def register_queues(self, queues: Sequence[str]) -> None:
        with self.conn.errors():
            self.conn.client.sadd(self.keys.queues, *queues)

    # -- consuming --------------------------------------------------------

    def fetch(self, queue: str, run: int, reserve: int, worker_id: str,
              start: Sequence[tuple[str, str]] = (), *, suspect_lost: int = 2,
              rate: tuple[int, int] | None = None, max_running: int = 0,
              limits: Sequence[TaskLimit] = ()) -> Fetched:
        args: list[Any] = [run, reserve, self.policy.dead_ttl_ms,
                           *self._taker(worker_id, suspect_lost, rate, max_running, limits)]
        for pair in start:
            args.extend(pair)
        reply = self.conn.run("fetch", [self.qk(queue).base], args)
        due, pairs, ended = int(reply[0]), int(reply[1]), int(reply[3])
        started = [flag == 1 for flag in reply[4:4 + pairs]]
        leased = reply[:len(reply) - ended] if ended else reply
        return Fetched(started, self._deliveries(queue, leased, 4 + pairs), None if due < 0 else due / 1000,
                       reply[2] == 1, [i.decode() for i in reply[len(reply) - ended:]] if ended else ())

    @staticmethod
    def _deliveries(queue: str, reply: list[Any], first: int) -> list[Delivery]:
        """The leased jobs of a script's reply, 6 values each from `first` on."""
        return [  # ids and tokens are ASCII; the message stays bytes
            Delivery(queue, reply[i].decode(), reply[i + 1], reply[i + 2].decode(), int(reply[i + 3]),
                     int(reply[i + 4]), reply[i + 5] == 1)
            for i in range(first, len(reply), 6)
        ]

    def _taker(self, worker_id: str, suspect_lost: int, rate: tuple[int, int] | None, max_running: int,
               limits: Sequence[TaskLimit]) -> list[Any]:
        """Who leases and under which limits: lib/take.lua's new_taker() fields."""
        args: list[Any] = [worker_id, self.policy.lease_ms, suspect_lost, *(rate or (0, 0)), max_running, len(limits)]
        for lim in limits:
            args += (lim.task, *(lim.rate or (0, 0)), lim.max_running)
        return args

    def wait(self, queues: Sequence[str], worker_id: str, timeout: float) -> list[str] | None:
        groups = self._wait_groups(queues, worker_id)
        block = self.conn.block(timeout)
        with self.conn.errors():
            if len(groups) == 1:
                reply = self.conn.client.blpop(groups[0], timeout=block)
                keys = None if reply is None else [text(reply[0]) or ""]
            else:
                waits = self._waits.get(worker_id)
                if waits is None:  # one per worker: two workers of one process wait at once
                    waits = self._waits[worker_id] = SlotWaits(self.conn)
                keys = waits.wait(groups, block)
        return None if keys is None else [self._notified[k] for k in keys if k in self._notified]  # not wake keys

    def _wait_groups(self, queues: Sequence[str], worker_id: str) -> list[list[str]]:
        """The notify keys of `queues` grouped by Cluster slot (one group elsewhere), each group
        ending with a wake key of this worker in that slot: one BLPOP may not span slots."""
        cache_key = (tuple(queues), worker_id)
        groups = self._groups.get(cache_key)
        if groups is None:
            by_slot: dict[int, list[str]] = {}
            for q in queues:
                by_slot.setdefault(self.conn.slot(self.qk(q).base), []).append(q)
            groups = self._groups[cache_key] = [
                [*(self.qk(q).notify for q in qs), self.qk(qs[0]).wake(worker_id)] for qs in by_slot.values()]
            self._notified.update((self.qk(q).notify, q) for q in queues)
        return groups

    def wake(self, worker_id: str, queues: Sequence[str]) -> None:
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for group in self._wait_groups(queues, worker_id):
                pipe.rpush(group[-1], "1").pexpire(group[-1], 60_000)
            pipe.execute()

    def settle(self, queue: str, outcomes: Sequence[Settlement]) -> list[Settled]:
        return self.settle_and_lease(queue, outcomes, None)[0]

    def settle_and_lease(self, queue: str, outcomes: Sequence[Settlement],
                         refill: Refill | None) -> tuple[list[Settled], list[Delivery]]:
        r = self.policy
        base = [self.qk(queue).base]
        out: list[Settled] = []
        leased: list[Delivery] = []
        for start in range(0, len(outcomes), SETTLE_BATCH):
            chunk = outcomes[start:start + SETTLE_BATCH]
            args: list[Any] = [r.result_ttl_ms, r.dead_ttl_ms, r.dead_max]
            if refill is not None and refill.run > 0:
                args += (refill.run, *self._taker(refill.worker_id, refill.suspect_lost, refill.rate,
                                                  refill.max_running, refill.limits))
            else:
                args.append(0)
            for o in chunk:
                if o.kind is Outcome.OK:
                    args += ("ok", o.id, o.token, o.result, o.max_attempts)
                elif o.kind is Outcome.RETRY:
                    args += ("retry", o.id, o.token, o.body, o.delay_ms, o.error, o.summary, o.attempt, o.signal)
                else:
                    args += ("dead", o.id, o.token, o.reason, o.error, o.body, o.signal)
            for o in chunk:  # after every outcome (settle.lua reads them last)
                if o.lines:
                    args += ("logs", o.id, len(o.lines), *o.lines)
            reply = self.conn.run("settle", base, args)
            out.extend([_SETTLED[code] for code in reply[:len(chunk)]])
            leased += self._deliveries(queue, reply, len(chunk))
        return out, leased

    def renew(self, queue: str, held: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        return self.renew_leases(queue, held)[0]

    def renew_leases(self, queue: str,
                     held: Sequence[tuple[str, str]]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        args: list[Any] = [self.policy.lease_ms]
        for pair in held:
            args.extend(pair)
        codes = [int(i) for i in self.conn.run("renew", [self.qk(queue).base], args)]
        return [held[i] for i in codes if i >= 0], [held[-i - 1] for i in codes if i < 0]

    def release(self, queue: str, held: Sequence[tuple[str, str]], *, ran: bool = False) -> int:
        args: list[Any] = ["1" if ran else "0", self.policy.dead_ttl_ms, self.policy.dead_max]
        for pair in held:
            args.extend(pair)
        return int(self.conn.run("release", [self.qk(queue).base], args))

    def recover(self, queue: str, limit: int = 500, *, worker: str = "") -> Recovered:
        r = self.policy
        args = [r.max_lost, limit, r.dead_ttl_ms, r.dead_max, worker]
        requeued, buried = self.conn.run("recover", [self.qk(queue).base], args)
        return Recovered(int(requeued), int(buried))

    def progress(self, queue: str, job_id: str, token: str, fraction: float, text: str,
                 lines: Sequence[str] = ()) -> bool:
        return bool(self.conn.run("progress", [self.qk(queue).job(job_id)], [token, repr(fraction), text, *lines]))

    def append_logs(self, queue: str, lines: Mapping[str, Sequence[str]]) -> int:
        args: list[Any] = []
        for job_id, some in lines.items():
            args += [job_id, len(some), *some]
        return int(self.conn.run("logs", [self.qk(queue).base], args)) if args else 0

    # -- job handles ------------------------------------------------------

    def state(self, queue: str, job_id: str, *, watch: bool = False) -> JobState | None:
        k = self.qk(queue)
        if watch:
            reply = self.conn.run("watch", [k.job(job_id)], [])
            if not reply:
                return None
        else:
            with self.conn.errors():
                reply = self.conn.client.hmget(k.job(job_id), "status", "result", "error", "reason")
            if reply[0] is None:
                return None
        return job_state(reply)

    def wait_done(self, queue: str, job_id: str, timeout: float) -> bool:
        key = self.qk(queue).done(job_id)
        with self.conn.errors():
            block = self.conn.block(timeout)
            # rotating the list onto itself leaves the token for every other waiter
            return self.conn.client.blmove(key, key, block, "RIGHT", "LEFT") is not None

    def cancel(self, queue: str, job_id: str, *, abort: str | None = None) -> Status | None:
        k = self.qk(queue)
        args: list[Any] = [job_id, self.policy.result_ttl_ms]
        if abort is not None:
            args.append(abort)
        before = self.conn.run("cancel", [k.job(job_id), k.scheduled, k.done(job_id)], args)
        status = status_of(before) if before else None
        if abort is not None and status is Status.RUNNING:  # tell its worker now, not at its next renewal
            with self.conn.errors():
                token = text(self.conn.client.hget(k.job(job_id), "token"))
            if token:
                self.wake_abort(token.rpartition(":")[0])
        return status

    def move(self, queue: str, job_id: str, move: Move) -> tuple[Status | None, bool]:
        return moved(self.conn.run("move", *move_call(self.qk(queue), job_id, move)))

    def wait_abort(self, worker_id: str, timeout: float) -> bool:
        with self.conn.errors():
            return self.conn.client.blpop([self.keys.abort_wake(worker_id)],
                                          timeout=self.conn.block(timeout)) is not None

    def wake_abort(self, worker_id: str) -> None:
        key = self.keys.abort_wake(worker_id)
        with self.conn.errors():
            self.conn.client.pipeline(transaction=False).rpush(key, "1").pexpire(key, 60_000).execute()

    def queues_holding(self, job_id: str, queues: Sequence[str]) -> list[str]:
        with self.conn.errors():
            pipe = self.conn.client.pipeline(transaction=False)
            for q in queues:
                pipe.exists(self.qk(q).job(job_id))
            found = pipe.execute()
        return [q for q, n in zip(queues, found, strict=True) if n]
