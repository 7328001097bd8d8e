"""Pool: where bodies run. Sync tasks on `concurrency` threads, async tasks on one event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue as queue_mod
import threading
from collections.abc import Callable, Sequence
from typing import Any

from taskq import execute
from taskq.broker.base import Delivery
from taskq.log import get_logger
from taskq.message import Message
from taskq.task import TaskBase

#: a body to run: the delivery, its decoded message and its task
Work = tuple[Delivery, Message, TaskBase[Any, Any]]

log = get_logger("taskq.worker")


class Pool:
    """Runs each job with `on_start` before and `on_done` (with its outcome) after, on the
    thread or loop that ran it. `wrap` runs every thread's target (it sets per-thread context);
    `middleware` (the app's, a list that may grow) wraps every attempt."""

    def __init__(self, concurrency: int, on_start: Callable[[Delivery, Message, TaskBase[Any, Any]], None],
                 on_done: Callable[[Delivery, Message, execute.Outcome], None],
                 wrap: Callable[[Callable[[], None]], None], middleware: Sequence[execute.Middleware] = ()) -> None:
        self.concurrency = concurrency
        self.middleware = middleware
        self.on_start = on_start
        self.on_done = on_done
        self.wrap = wrap
        self.loop: asyncio.AbstractEventLoop | None = None
        self.threads: list[threading.Thread] = []
        self._work: queue_mod.SimpleQueue[Work | None] = queue_mod.SimpleQueue()
        #: the runs of async jobs, by delivery key (so an abort can cancel one)
        self.async_runs: dict[tuple[str, str, str], concurrent.futures.Future[None]] = {}

    def start(self) -> None:
        for i in range(self.concurrency):
            self._spawn(self._job_thread, f"taskq-job-{i}")
        self.loop = asyncio.new_event_loop()  # async tasks share this one loop
        self._spawn(self._run_loop, "taskq-loop")

    def _run_loop(self) -> None:
        assert self.loop is not None
        self.loop.run_forever()
        self.loop.close()  # closed here, not by the collector at exit (when its fds may be gone)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=self.wrap, args=(target,), name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def submit(self, delivery: Delivery, message: Message, task: TaskBase[Any, Any]) -> None:
        """Run a job. Async jobs are created from the calling thread and inherit its context."""
        if task.is_async and self.loop is not None:
            run = asyncio.run_coroutine_threadsafe(self._run_async(delivery, message, task), self.loop)
            self.async_runs[delivery.key] = run
            run.add_done_callback(lambda _: self.async_runs.pop(delivery.key, None))
        else:
            self._work.put((delivery, message, task))

    def _job_thread(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            delivery, message, task = item
            try:
                self.on_start(delivery, message, task)
                self.on_done(delivery, message, execute.run_sync(task, message, self.middleware))
            except Exception:  # a bug here must not cost the worker a thread; the lease brings the job back
                log.exception("job thread failed", job_id=delivery.id, queue=delivery.queue)

    async def _run_async(self, delivery: Delivery, message: Message, task: TaskBase[Any, Any]) -> None:
        try:
            self.on_start(delivery, message, task)
            self.on_done(delivery, message, await execute.run_async(task, message, self.middleware))
        except Exception:
            log.exception("job task failed", job_id=delivery.id, queue=delivery.queue)

    def cancel(self, delivery: Delivery) -> bool:
        """Cancel a running async job (job.abort()); False if it is not one."""
        run = self.async_runs.get(delivery.key)
        return run is not None and run.cancel()

    def stop(self) -> None:
        """Let the threads and the loop end (running bodies are not interrupted)."""
        for _ in range(self.concurrency):
            self._work.put(None)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
