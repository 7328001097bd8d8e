"""The app the beat fault tests run under `taskq beat beatapp:app` (subprocesses).

Three schedules fire every second, one per catch-up policy. The evidence of a firing is
the fired job itself (its record in Redis: `cron:<schedule>:<tick ms>`) and each beat's
"cron fired" log line; nothing here runs the jobs.

Environment: TASKQ_FAULT_URL  broker URL (the redis-server under test)
"""

from __future__ import annotations

import os

import taskq

app = taskq.TaskQ(os.environ.get("TASKQ_FAULT_URL", "memory://beatapp"))


@app.task(retries=0)
def ticked(schedule: str) -> str:
    return f"{schedule} fired as {taskq.current_job().id}"


#: schedule name -> catch-up policy
POLICIES = {"second": "latest", "second-all": "all", "second-none": "none"}

for _name, _policy in POLICIES.items():
    app.schedule(_name, ticked, cron="* * * * * *", args=[_name], catchup=_policy)  # type: ignore[arg-type]
