"""A small app for the CLI tests (imported by `taskq ... cli_app:app`)."""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_TEST_URL", "memory://cli"), lease=2)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(retries=0)
def fail(message: str) -> None:
    raise RuntimeError(message)


@app.task(queue="emails")
def send(to: str) -> str:
    return to


@app.task
def sleepy(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds
