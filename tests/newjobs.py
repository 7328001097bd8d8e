"""NewJobs for tests that store jobs through the broker contract directly (taskq/broker/placement.py)."""

from __future__ import annotations

from typing import Any

from taskq.broker.base import NewJob, Placement


def new_job(queue: str, job_id: str, body: bytes, priority: int = 0, *, key: str | None = None,
            **place: Any) -> NewJob:
    """One job of `queue`; `place` takes Placement's fields (delay_ms, at_ms, order, gate, task, ...)."""
    return NewJob(Placement(queue, **place), job_id, body, priority, key)


def new_jobs(queue: str, jobs: list[tuple[str, bytes, int]], **place: Any) -> list[NewJob]:
    """(id, body, priority)s of one placement, as enqueue_many takes them."""
    shared = Placement(queue, **place)
    return [NewJob(shared, job_id, body, priority) for job_id, body, priority in jobs]
