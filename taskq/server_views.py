"""The read model of what runs the queues: the Redis server's facts (with the warning an
operator needs about its eviction policy) and the live workers, each with the jobs it runs now.
Built from the broker's records (ServerFacts, WorkerRecord, JobRecord) only."""

from __future__ import annotations

from typing import Any

from taskq.broker.base import Status
from taskq.info import JobInfo
from taskq.views import RUNNING_SHOWN, Source, stamp

#: the one eviction policy under which Redis never deletes a key to make room
SAFE_POLICY = "noeviction"


def redis_facts(app: Source) -> dict[str, Any]:
    """The server's version, memory used and its limit (0: none), eviction policy, connected
    clients; `warning` says why the policy may lose jobs (None when it is noeviction or unknown)."""
    facts = app.broker.server_facts()
    policy = facts.eviction_policy
    warning = None
    if policy is not None and policy != SAFE_POLICY:
        warning = (f"maxmemory-policy is {policy}: at maxmemory Redis deletes keys, jobs among them; "
                   f"set it to {SAFE_POLICY}")
    return {"version": facts.version, "used_memory": facts.used_memory, "max_memory": facts.max_memory,
            "eviction_policy": policy, "connected_clients": facts.connected_clients, "warning": warning}


def current_jobs(app: Source, queues: list[str]) -> list[dict[str, Any]]:
    """The jobs running now (the longest-held RUNNING_SHOWN of each queue): id, queue, task,
    attempt, worker, started, progress (fraction and text, or None)."""
    out = []
    for q in queues:
        leased = app.broker.running(q, RUNNING_SHOWN)
        for record in app.broker.jobs(q, [e.id for e in leased]):
            if record is None or record.status is not Status.RUNNING:
                continue
            info = JobInfo.of(record, app.max_message_bytes)
            progress = None if info.progress is None else {"fraction": info.progress, "text": info.progress_text}
            out.append({"id": record.id, "queue": q, "task": info.task, "attempt": info.attempt,
                        "worker": record.worker, "started": stamp(record.started_ms), "progress": progress})
    return out


def workers(app: Source) -> list[dict[str, Any]]:
    """Every live worker (id, host, pid, queues, concurrency, processed, started, last heartbeat)
    with `jobs`: what current_jobs() finds it running."""
    running = current_jobs(app, app.known_queues())
    out = []
    for w in sorted(app.broker.live_workers(), key=lambda w: w.id):
        out.append({"id": w.id, "host": w.host, "pid": w.pid, "queues": list(w.queues), "concurrency": w.concurrency,
                    "processed": w.processed, "started": stamp(w.started_ms), "heartbeat": stamp(w.beat_ms),
                    "jobs": [j for j in running if j["worker"] == w.id]})
    return out
