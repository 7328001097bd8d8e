"""The README quickstart: a few tasks, and a producer when run as a script.

From the repository root, with $TASKQ_URL pointing at your Redis:

    taskq worker examples.quickstart:app      # terminal 1: runs the jobs
    python examples/quickstart.py             # terminal 2: enqueues jobs, prints results
    taskq beat examples.quickstart:app        # optional: fires `heartbeat` every 10 s

Task names default to the function's name (no module prefix), so the script
(module __main__) and the worker (module examples.quickstart) agree on them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import taskq

# the URL comes from $TASKQ_URL, else redis://localhost:6379/0
app = taskq.TaskQ()
log = logging.getLogger(__name__)


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
def total(values: list[int]) -> int:
    return sum(values)


@app.task(queue="emails", retries=5, backoff=taskq.Backoff(base=1, factor=2, max=60), timeout=30)
def send_email(to: str, subject: str) -> str:
    return f"sent {subject!r} to {to}"


@app.task(timeout=5)
async def slow_square(x: int) -> int:
    await asyncio.sleep(0.1)  # async tasks share the worker's event loop
    return x * x


@app.task(timeout=1, retries=0)
async def nap(seconds: float) -> float:
    await asyncio.sleep(seconds)  # cancelled at the 1 s time limit
    return seconds


#: runs per call id in this worker process (so flaky() fails twice, then works)
_runs: dict[str, int] = {}


@app.task(retries=3, backoff=taskq.Backoff(base=0.5, factor=2, jitter=False))
def flaky(call_id: str) -> str:
    _runs[call_id] = _runs.get(call_id, 0) + 1
    if _runs[call_id] < 3:
        raise ConnectionError(f"upstream timed out (run {_runs[call_id]})")
    return f"succeeded on run {_runs[call_id]}"


@app.task(retries=20)
def wait_for_export(export_id: str, ready_at: float) -> str:
    if time.time() < ready_at:
        raise taskq.Retry(delay=0.5)  # not ready yet: look again in 0.5 s (counts as an attempt)
    return f"export {export_id} is ready"


@app.task
def charge(amount_cents: int) -> str:
    if amount_cents <= 0:
        raise taskq.Reject(f"invalid amount {amount_cents}")  # no retries: straight to the dead-letter list
    return f"charged {amount_cents} cents"


@app.task
def import_rows(count: int) -> int:
    taskq.current_job().log(f"fetched {count} rows")  # kept with the job: job.logs()
    log.warning("row %d skipped", 7)  # the task's own stdlib records at INFO and above too
    return count - 1


@app.task(cron="* * * * * */10")  # every 10 s (seconds are the 6th field), fired by `taskq beat`
def heartbeat() -> str:
    return f"alive: {taskq.current_job().id}"


def main() -> None:
    print("add(2, 3)           ->", add.delay(2, 3).result(timeout=10))
    print("slow_square(12)     ->", slow_square.delay(12).result(timeout=10))
    print("send_email          ->", send_email.delay("ada@example.com", "hello").result(timeout=10))
    print("flaky               ->", flaky.delay(uuid.uuid4().hex).result(timeout=30))
    print("wait_for_export     ->", wait_for_export.delay("e1", time.time() + 1).result(timeout=30))

    later = add.options(delay=2).delay(40, 2)
    print("add in 2 s          ->", later.status(), "now,", later.result(timeout=10), "later")

    for job in (charge.delay(-5), nap.delay(3)):
        try:
            job.result(timeout=10)
        except taskq.TaskFailed as exc:
            print("failed job          ->", job.status(), "|", exc.reason)

    first = add.options(delay=60, key="report:2024-06-01").delay(1, 1)
    again = add.options(delay=60, key="report:2024-06-01").delay(1, 1)
    print("same key, same job  ->", first.id == again.id)
    print("cancel              ->", first.cancel(), first.status())


if __name__ == "__main__":
    main()
