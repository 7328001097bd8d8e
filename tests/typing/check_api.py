"""Type-checked by `mypy --strict tests/typing` in `make test`; never run.

Each `type: ignore[...]` marks a call mypy must reject: with warn_unused_ignores
(part of --strict) the check fails if mypy stops rejecting it.
"""

from __future__ import annotations

from typing import assert_type

import taskq

app = taskq.TaskQ("memory://typing")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(queue="emails", retries=5, backoff=taskq.Backoff(base=1, factor=2, max=300, jitter=True), timeout=30)
def send_email(to: str) -> None: ...


@app.task
async def fetch(url: str) -> bytes:
    return url.encode()


assert_type(add.delay(2, 3), taskq.Job[int])
assert_type(add.options(delay=10, priority=9, key="order:42").delay(2, 3), taskq.Job[int])
assert_type(add.delay(2, 3).result(timeout=10), int)
assert_type(add(2, 3), int)
assert_type(send_email.delay("ada@example.com"), taskq.Job[None])
assert_type(fetch.delay("https://example.com"), taskq.Job[bytes])
assert_type(fetch.delay("x").result(), bytes)
assert_type(add.delay(1, 2).status(), taskq.Status)

add.delay("x", 3)  # type: ignore[arg-type]
add.delay(1)  # type: ignore[call-arg]
add.options(queue="high").delay(1, "y")  # type: ignore[arg-type]
fetch.delay(3)  # type: ignore[arg-type]
add.options(dealy=3)  # type: ignore[call-arg]

# partitions (DESIGN §1.1)
app.queue("deliveries", partition_max_running=taskq.Adaptive(start=1, max=32), partition_rate_limit="10/s",
          fair=True)
assert_type(add.options(partition="host:a").delay(1, 2), taskq.Job[int])
assert_type(add.starmap([(1, 2)], partition=lambda args: f"p{args[0]}"), list[taskq.Job[int]])
assert_type(app.partition("deliveries", "host:a"), taskq.Partition)
assert_type(app.partition("deliveries", "host:a").info(), taskq.PartitionInfo)
assert_type(app.partitions("deliveries"), list[taskq.PartitionInfo])
assert_type(app.partition("deliveries", "host:a").pause(), bool)
app.partition("deliveries", "host:a").limit(max_running="4")  # type: ignore[arg-type]
add.options(partition=3).delay(1, 2)  # type: ignore[arg-type]
assert_type(taskq.RateLimited(retry_after=30, partition=True), taskq.RateLimited)
