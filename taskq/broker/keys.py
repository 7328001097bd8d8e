"""Redis key names: the only place they are built (see docs/protocol.md §2).

Every key starts with the namespace (default "taskq"), so apps in different namespaces on one
Redis never see each other. Every key of a queue carries the hash tag {queue}: one Cluster slot.
"""

from __future__ import annotations

import dataclasses

from taskq.broker.records import DEFAULT_NAMESPACE


@dataclasses.dataclass(frozen=True, slots=True)
class QueueKeys:
    """Every key of one queue; each carries the {queue} hash tag (one Cluster slot).

    Lua scripts get `base` and derive the other names from it (lua/lib/keys.lua), so the
    names here and there must agree; tests/test_scripts.py checks that they do.
    """

    namespace: str
    queue: str

    @property
    def base(self) -> str:
        """`<namespace>:{<queue>}`: the prefix of every key below (and KEYS[1] of most scripts)."""
        return f"{self.namespace}:{{{self.queue}}}"

    def ready(self, priority: int = 0) -> str:
        """List of job ids waiting to run at this priority."""
        return f"{self.base}:ready" if priority == 0 else f"{self.base}:ready:{priority}"

    @property
    def scheduled(self) -> str:
        """Sorted set: job id -> due time (unix ms)."""
        return f"{self.base}:scheduled"

    @property
    def leases(self) -> str:
        """Sorted set: job id -> lease deadline (unix ms) of jobs leased to a worker."""
        return f"{self.base}:leases"

    @property
    def reserved(self) -> str:
        """Set: the leased job ids whose body has not started (prefetched)."""
        return f"{self.base}:reserved"

    @property
    def dead(self) -> str:
        """Sorted set: job id -> time it was dead-lettered (unix ms)."""
        return f"{self.base}:dead"

    @property
    def notify(self) -> str:
        """List holding a wake-up token that idle workers block on."""
        return f"{self.base}:notify"

    def job(self, job_id: str) -> str:
        """Hash: the job's message, status, lease token, result or error."""
        return f"{self.base}:job:{job_id}"

    def dedup(self, key: str) -> str:
        """String: the id of the live job that holds this deduplication key."""
        return f"{self.base}:key:{key}"

    def schedule(self, name: str) -> str:
        """Hash: a schedule's state (spec, newest claimed tick; a stored one's definition too),
        in its queue's slot."""
        return f"{self.base}:schedule:{name}"

    def done(self, job_id: str) -> str:
        """List holding one token once the job ends, for result() to block on."""
        return f"{self.base}:done:{job_id}"

    @property
    def full(self) -> str:
        """String, expiring: set when a producer was refused for max_ready (a fetch then makes room)."""
        return f"{self.base}:full"

    @property
    def room(self) -> str:
        """List: one token per job a fetch took off a full queue, for producers blocked on room."""
        return f"{self.base}:room"

    @property
    def rate(self) -> str:
        """Sorted set: the queue's leases in its rate limit's sliding window (member id:delivery)."""
        return f"{self.base}:rate"

    def order(self, key: str) -> str:
        """List: the jobs of one ordering key in line, the one holding the key first."""
        return f"{self.base}:order:{key}"

    @property
    def ordered(self) -> str:
        """Counter: jobs waiting in the lines of ordering keys (behind the holder)."""
        return f"{self.base}:ordered"

    @property
    def parked(self) -> str:
        """Counter: jobs held back by their task's own limits, in every task's held list."""
        return f"{self.base}:parked"

    @property
    def gates(self) -> str:
        """Set: the tasks with jobs held back by their own limits (each in <gate>:held)."""
        return f"{self.base}:gates"

    def gate(self, task: str) -> str:
        """Prefix of a task's own limit keys: :rate (sliding window), :leases (set), :held (list)."""
        return f"{self.base}:gate:{task}"

    @property
    def events(self) -> str:
        """Stream: one entry per job transition (lua/lib/events.lua), capped near events_max."""
        return f"{self.base}:events"

    def stats(self, minute: int) -> str:
        """Hash: one minute's history (unix minute), written by lua/lib/stats.lua, kept 25 hours."""
        return f"{self.base}:stats:{minute}"

    def stats_hour(self, hour: int) -> str:
        """Hash: one hour's history (unix hour: the sum of its minutes, maxima kept), written by
        lua/lib/stats.lua with its minutes, kept 8 days."""
        return f"{self.base}:stats:h:{hour}"

    @property
    def events_max(self) -> str:
        """String: about how many entries the events stream keeps (absent: 10000; 0: none written)."""
        return f"{self.base}:events:max"

    @property
    def succeeded(self) -> str:
        """List: ids of the queue's succeeded jobs in the order they ended, for keep_succeeded."""
        return f"{self.base}:succeeded"

    @property
    def succeeded_max(self) -> str:
        """String: how many succeeded records the queue keeps (absent: 100000; -1: no cap)."""
        return f"{self.base}:succeeded:max"

    @property
    def args_max(self) -> str:
        """String: how many of the newest succeeded jobs keep their message (absent: 1000)."""
        return f"{self.base}:args:max"

    @property
    def args_kept(self) -> str:
        """Hash: job id -> message of the newest `args:max` succeeded jobs (beside their records,
        which stay small: one HDEL forgets a message that leaves the window)."""
        return f"{self.base}:args:kept"

    @property
    def cancelled(self) -> str:
        """List: ids of the queue's cancelled jobs in the order they ended (capped as `succeeded`)."""
        return f"{self.base}:cancelled"

    def logs(self, job_id: str) -> str:
        """List: the job's newest 100 log lines, '<unix ms> <LEVEL> <text>' (lua/lib/logs.lua)."""
        return f"{self.base}:logs:{job_id}"

    @property
    def paused(self) -> str:
        """String: set while the queue is paused (`taskq queue pause`): no job is leased from it."""
        return f"{self.base}:paused"

    @property
    def outbox(self) -> str:
        """List: ids of workflow steps that ended with successors still to tell (lib/finish.lua)."""
        return f"{self.base}:outbox"

    # -- partitions (lua/lib/part.lua) --

    @property
    def fair(self) -> str:
        """String '1' while the queue is fair: its ready jobs wait in their partitions' lanes."""
        return f"{self.base}:fair"

    @property
    def partition_limits(self) -> str:
        """Hash: every partition's limits unless it has its own (max_running, rate_n, rate_window,
        amax and astart for an adaptive max_running)."""
        return f"{self.base}:plim"

    def partition(self, name: str) -> str:
        """Prefix of one partition's keys: :<prio> (its lanes), :conf, :until, :alimit, :leases, :rate."""
        return f"{self.base}:part:{name}"

    @property
    def laned(self) -> str:
        """Counter: jobs waiting in partitions' lanes (they count as ready)."""
        return f"{self.base}:laned"

    @property
    def backlog(self) -> str:
        """Sorted set: partition -> jobs in its lanes."""
        return f"{self.base}:backlog"

    @property
    def blocked(self) -> str:
        """Set: partitions that may not start a job now (paused, at their cap, out of rate, backing off)."""
        return f"{self.base}:blocked"

    @property
    def partition_waits(self) -> str:
        """Sorted set: blocked partitions that reopen at a time (unix ms)."""
        return f"{self.base}:pwait"

    def wake(self, worker_id: str) -> str:
        """List an idle worker blocks on beside this queue's notify (same slot), so its shutdown
        can wake it."""
        return f"{self.base}:wake:{worker_id}"


def retention(qk: QueueKeys, events: int, succeeded: int | None, args: int = 1000) -> dict[str, int]:
    """The keys (and values) that say what a queue keeps: events, succeeded records and how
    many of those keep their arguments."""
    return {qk.events_max: max(0, int(events)), qk.succeeded_max: -1 if succeeded is None else max(0, int(succeeded)),
            qk.args_max: max(0, int(args))}


@dataclasses.dataclass(frozen=True, slots=True)
class Keys:
    """The key names of one namespace.

    The keys that belong to no queue (queue registry, workers, schedule index, beat leader) share
    the hash tag `{<namespace>:global}`: one Cluster slot, so a script may touch several of them.
    A queue name has no colon, so no queue's tag is ever the same.
    """

    namespace: str = DEFAULT_NAMESPACE

    def queue(self, name: str) -> QueueKeys:
        return QueueKeys(self.namespace, name)

    @property
    def base(self) -> str:
        """`<namespace>:{<namespace>:global}`: the prefix of every key below."""
        return f"{self.namespace}:{{{self.namespace}:global}}"

    @property
    def queues(self) -> str:
        """Set of every queue name enqueued to or consumed (for `taskq status`)."""
        return f"{self.base}:queues"

    @property
    def legacy_queues(self) -> str:
        """`<namespace>:queues`, the queue registry of the first release: still read, since
        producers in other languages were told to SADD it (docs/protocol.md §6)."""
        return f"{self.namespace}:queues"

    @property
    def schedules(self) -> str:
        """Hash: schedule name -> `<queue>|<app>`, so a beat finds its app's stale schedules."""
        return f"{self.base}:schedules"

    @property
    def stored_schedules(self) -> str:
        """Hash: id -> queue of each schedule stored at run time (app.schedules.upsert)."""
        return f"{self.base}:schedules:stored"

    @property
    def schedules_rev(self) -> str:
        """String: a counter every change of a stored schedule (or a pause) increments, so a
        beat re-reads them only when it moved."""
        return f"{self.base}:schedules:rev"

    @property
    def legacy_schedules(self) -> str:
        """`<namespace>:schedules`, the first release's index: a starting beat moves it here."""
        return f"{self.namespace}:schedules"

    @property
    def workers(self) -> str:
        """Sorted set: worker id -> unix ms until which it counts as live (renewed by its heartbeat)."""
        return f"{self.base}:workers"

    @property
    def beat_leader(self) -> str:
        """String: id of the beat holding the leader lease (expires with the lease)."""
        return f"{self.base}:beat:leader"

    def abort_wake(self, worker_id: str) -> str:
        """List a worker's lease keeper blocks on between renewals: job.abort() of a job that
        worker runs pushes a token, so the abort is learned at once, not at the next renewal."""
        return f"{self.base}:abort:{worker_id}"

    def worker_info(self, worker_id: str) -> str:
        """Hash: what a live worker says about itself (host, pid, queues, ...); expires with it."""
        return f"{self.base}:worker:{worker_id}"
