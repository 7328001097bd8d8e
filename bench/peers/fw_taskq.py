"""taskq under the shared workloads (bench/peers/common.py). Runs in taskq's own virtualenv."""

from __future__ import annotations

import os
import sys

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


def adapter(url: str) -> common.Adapter:
    app.url = url
    return common.Adapter(
        framework="taskq", version=taskq.__version__,
        enqueue=lambda i: noop.delay(i), enqueue_latency=lambda t: lat.delay(t),
        enqueue_bulk=lambda r: noop.map(r),  # batches of 1000 per script call
        workers=workers, env={"TASKQ_URL": url},
    )


if __name__ == "__main__":
    common.main(adapter)
