"""Redis key names: the only place they are built (see docs/protocol.md)."""

from __future__ import annotations

import dataclasses

#: prefix of every key taskq writes
PREFIX = "taskq"
#: priorities run from 0 (default) to MAX_PRIORITY; higher runs first
MAX_PRIORITY = 9
#: set of every queue name ever enqueued to or consumed (for `taskq status`)
QUEUES = f"{PREFIX}:queues"
#: hash: schedule name -> its queue (where its state key lives), so beat can find stale ones
SCHEDULES = f"{PREFIX}:schedules"
#: sorted set: worker id -> unix ms until which it counts as live (renewed by its heartbeat)
WORKERS = f"{PREFIX}:workers"
#: string: id of the beat holding the leader lease (expires with the lease)
BEAT_LEADER = f"{PREFIX}:beat:leader"


@dataclasses.dataclass(frozen=True, slots=True)
class QueueKeys:
    """Every key of one queue; each carries the {queue} hash tag (one Cluster slot)."""

    queue: str

    @property
    def base(self) -> str:
        return f"{PREFIX}:{{{self.queue}}}"

    def ready(self, priority: int = 0) -> str:
        """List of job ids waiting to run at this priority."""
        return f"{self.base}:ready" if priority == 0 else f"{self.base}:ready:{priority}"

    @property
    def ready_by_priority(self) -> list[str]:
        """Ready lists, highest priority first (index = MAX_PRIORITY - priority)."""
        return [self.ready(p) for p in range(MAX_PRIORITY, -1, -1)]

    @property
    def scheduled(self) -> str:
        """Sorted set: job id -> due time (unix ms)."""
        return f"{self.base}:scheduled"

    @property
    def leases(self) -> str:
        """Sorted set: job id -> lease deadline (unix ms) of jobs being run."""
        return f"{self.base}:leases"

    @property
    def dead(self) -> str:
        """Sorted set: job id -> time it was dead-lettered (unix ms)."""
        return f"{self.base}:dead"

    @property
    def seq(self) -> str:
        """Counter that names dead records of ready entries with no job record."""
        return f"{self.base}:seq"

    @property
    def notify(self) -> str:
        """List of wake-up tokens that idle workers block on."""
        return f"{self.base}:notify"

    @property
    def job_prefix(self) -> str:
        return f"{self.base}:job:"

    def job(self, job_id: str) -> str:
        """Hash: the job's message, status, lease token, result or error."""
        return f"{self.job_prefix}{job_id}"

    def dedup(self, key: str) -> str:
        """String: the id of the live job that holds this deduplication key."""
        return f"{self.base}:key:{key}"

    def schedule(self, name: str) -> str:
        """Hash: a cron schedule's state (spec, newest claimed tick), in its queue's slot."""
        return f"{self.base}:schedule:{name}"

    @property
    def done_prefix(self) -> str:
        return f"{self.base}:done:"

    def done(self, job_id: str) -> str:
        """List holding one token once the job ends, for result() to block on."""
        return f"{self.done_prefix}{job_id}"


def worker_info(worker_id: str) -> str:
    """Hash: what a live worker says about itself (host, pid, queues, ...); expires with it."""
    return f"{PREFIX}:worker:{worker_id}"


def worker_wake(worker_id: str) -> str:
    """List a worker blocks on beside its queues, so shutdown can wake it."""
    return f"{PREFIX}:worker:{worker_id}:wake"
