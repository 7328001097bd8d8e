"""taskq under the shared workloads (bench/peers/common.py). Runs in taskq's own virtualenv."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable
from typing import Any

import common

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))


@app.task
def noop(i: int) -> None:
    common.mark(i)


@app.task
def lat(t: float) -> None:
    common.record_latency(t)


def workers(config: str) -> tuple[str, list[list[str]]]:
    base = [sys.executable, "-m", "taskq", "worker", "fw_taskq:app"]
    if config == "default":
        return "taskq worker (1 process, -c 8, info logs)", [base]
    return "taskq worker -p 2 -c 16 --log-level warning", [[*base, "-p", "2", "-c", "16", "--log-level", "warning"]]


_loop: asyncio.AbstractEventLoop | None = None


def _run_async(coro: Awaitable[Any]) -> Any:
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def adapter(url: str) -> common.Adapter:
    app.url = url
    return common.Adapter(
        framework="taskq", version=taskq.__version__,
        enqueue=lambda i: noop.delay(i), enqueue_latency=lambda t: lat.delay(t),
        enqueue_bulk=lambda r: noop.map(r),  # batches of 1000 per script call
        workers=workers, env={"TASKQ_URL": url},
        enqueue_async=lambda i: noop.delay_async(i), run_async=_run_async,
    )


if __name__ == "__main__":
    common.main(adapter)
