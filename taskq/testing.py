"""Helpers for users' own tests: run a worker until the queues are empty."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from taskq.app import TaskQ
from taskq.worker import Worker


def drain(app: TaskQ, queues: Sequence[str] | None = None, *, concurrency: int = 4,
          timeout: float = 60.0) -> int:
    """Run jobs until ready, scheduled and running are all empty; return how many ran.

    Scheduled jobs (delays, retry backoff) are waited for. Raises TimeoutError if
    the queues are not empty after `timeout` seconds.
    """
    worker = Worker(app, queues, concurrency=concurrency, burst=True, grace=timeout)
    thread = threading.Thread(target=worker.run, name="taskq-drain", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(worker.grace)
        raise TimeoutError(f"queues {worker.queues} not empty after {timeout}s")
    return worker.processed
