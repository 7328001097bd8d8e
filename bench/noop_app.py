"""The no-op app the processing benchmarks run (bench/limits.py, budget.py, workflows.py, events.py): one
no-op task; $TASKQ_BENCH picks its flow control configuration or workflow shape ("off": neither)."""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))
SHAPE = os.environ.get("TASKQ_BENCH", "off")
if SHAPE == "rate":
    app.queue("default", rate_limit="1000000/s")  # far above what 2 cores reach: only its cost shows
elif SHAPE == "cap":
    app.queue("default", max_running=32)  # the fleet's total concurrency (2 workers x 16)
elif SHAPE == "ready":
    app.queue("default", max_ready=1_000_000)
elif SHAPE == "no_events":
    app.queue("default", events=False)  # bench/events.py: the event stream's cost is "off" against this
#: the task's own limits, for the task_rate and task_cap configurations
LIMITS: dict[str, object] = {"task_rate": {"rate_limit": "1000000/s"}, "task_cap": {"max_running": 32}}.get(
    SHAPE, {})  # type: ignore[assignment]


@app.task(**LIMITS)  # type: ignore[call-overload]
def noop(i: int) -> None:
    return None


def enqueue(n: int) -> None:
    """n jobs; with "order", over 100 ordering keys (one map() per key, so each key's jobs are in
    line); with "group", "chord" or "chain" (bench/workflows.py), as flows of 100, 100 and 10 jobs."""
    if SHAPE in WORKFLOWS:
        WORKFLOWS[SHAPE](n)
        return
    if SHAPE != "order":
        noop.map(range(n))
        return
    for key in range(100):
        noop.options(ordering_key=f"k{key}").map(range(key, n, 100))


def _groups(n: int) -> None:
    for start in range(0, n, 100):
        taskq.group(noop.s(i) for i in range(start, start + 100)).delay()


def _chords(n: int) -> None:  # 99 members and the callback
    for start in range(0, n, 100):
        taskq.chord(taskq.group(noop.s(i) for i in range(start, start + 99)), noop.s()).delay()


def _chains(n: int) -> None:  # 10 steps one after the other
    for start in range(0, n, 10):
        taskq.chain(noop.s(start), *(noop.s() for _ in range(9))).delay()


WORKFLOWS = {"group": _groups, "chord": _chords, "chain": _chains}
