"""`make demo`: taskq end to end on the embedded memory:// broker, no server needed.

Enqueues jobs, runs a worker in this process, and shows a result, a retry that
succeeds, a job that ends in the dead-letter list, and a delayed job on time.
"""

from __future__ import annotations

import asyncio
import threading
import time

import taskq
from taskq.log import configure

app = taskq.TaskQ("memory://demo", lease=5)
attempts: dict[str, int] = {}


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task
async def slow_square(x: int) -> int:
    await asyncio.sleep(0.05)
    return x * x


@app.task(retries=3, backoff=taskq.Backoff(base=0.2, factor=2, jitter=False))
def flaky_fetch(url: str) -> str:
    attempts[url] = attempts.get(url, 0) + 1
    if attempts[url] < 3:
        raise ConnectionError(f"{url} timed out (attempt {attempts[url]})")
    return f"fetched {url} on attempt {attempts[url]}"


@app.task(retries=1, backoff=taskq.Backoff(base=0.1, jitter=False))
def charge_card(amount: int) -> None:
    raise ValueError(f"card declined for {amount}")


@app.task
def remind(who: str, enqueued: float) -> str:
    return f"reminder for {who}, {time.time() - enqueued:.2f}s after enqueue"


def main() -> None:
    configure("info")  # job events as key=value lines; "debug" adds each start
    worker = taskq.Worker(app, concurrency=4)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()

    total = add.delay(2, 3)
    square = slow_square.delay(12)
    flaky = flaky_fetch.delay("https://example.com/feed")
    charge = charge_card.delay(4200)
    reminder = remind.options(delay=1.5).delay("ada", time.time())
    print(f"enqueued 5 jobs; the reminder is {reminder.status()} for 1.5 s")

    print(f"add(2, 3)            -> {total.result(timeout=5)}")
    print(f"slow_square(12)      -> {square.result(timeout=5)}  (async task)")
    print(f"flaky_fetch          -> {flaky.result(timeout=10)}  (retried with backoff)")
    try:
        charge.result(timeout=10)
    except taskq.TaskFailed as exc:
        print(f"charge_card(4200)    -> {charge.status()}: {exc.reason}")
    print(f"remind (delay 1.5 s) -> {reminder.result(timeout=10)}")
    print(f"inline add(1, 1)     -> {add(1, 1)}  (plain call, no queue)")
    depths = app.broker.depths("default")
    print(f"queue 'default' now: {depths}")

    worker.stop()
    thread.join()


if __name__ == "__main__":
    main()
