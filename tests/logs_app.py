"""An app whose task fails through a helper, inside a middleware (imported by the worker-log tests,
in-process and as `taskq worker logs_app:app`)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_TEST_URL", "memory://logs"), lease=2)


@app.middleware
def audited(job: taskq.JobContext, call_next: Callable[[], Any]) -> Any:
    return call_next()


def charge(n: int) -> None:
    raise ValueError(f"boom {n}")


@app.task(retries=1, backoff=taskq.Backoff(base=0.05, jitter=False))
def boom(n: int) -> None:
    charge(n)


@app.task(retries=0)
def wrapped(n: int) -> None:
    try:
        charge(n)
    except ValueError as exc:
        raise RuntimeError("could not charge") from exc


@app.task(retries=1)
def again() -> None:
    raise taskq.Retry(delay=0)  # on purpose: no traceback in the log


@app.task
def refuse() -> None:
    raise taskq.Reject("not for us")
