"""The app `bench/beat_lateness.py` runs under `taskq beat`: BENCH_SCHEDULES per-second schedules
declared in code, or none with BENCH_STORED=1 (the bench stores them at run time instead)."""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_URL"))


@app.task
def tick(n: int) -> None: ...


if os.environ.get("BENCH_STORED") != "1":
    for i in range(int(os.environ.get("BENCH_SCHEDULES", "1"))):
        app.schedule(f"s{i}", tick, cron="* * * * * *", args=[i])
