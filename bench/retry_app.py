"""The app of bench/retry_commands.py: one job in five fails its first attempt and is retried."""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))


@app.task(retries=1)
def sometimes(i: int) -> int:
    if i % 5 == 0 and taskq.current_job().attempt == 1:
        raise taskq.Retry(delay=0)  # a failed attempt, retried at once
    return i
