"""The app bench/flow.py runs: one no-op task, its queue's flow control chosen by $TASKQ_FLOW."""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))
FLOW = os.environ.get("TASKQ_FLOW", "off")
if FLOW == "rate":
    app.queue("default", rate_limit="1000000/s")  # far above what 2 cores reach: only its cost shows
elif FLOW == "cap":
    app.queue("default", max_running=32)  # the fleet's total concurrency (2 workers x 16)
elif FLOW == "ready":
    app.queue("default", max_ready=1_000_000)


@app.task
def noop(i: int) -> None:
    return None
