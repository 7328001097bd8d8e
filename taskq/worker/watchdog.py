"""Watchdog: time limits of sync jobs under a supervisor, the supervisor's death, memory.

A thread cannot be stopped, so a job over its time limit ends its whole process (the
supervisor replaces it); an async job is cancelled by its own event loop first, and killed
only if the loop itself is stuck.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from taskq.broker.base import Delivery
from taskq.log import get_logger
from taskq.message import Message
from taskq.task import TaskBase

#: seconds between watchdog checks (time limits, parent process, memory)
TICK = 0.1
#: seconds past an async job's limit before the watchdog kills (its loop normally cancels it first)
ASYNC_KILL_SLACK = 1.0

log = get_logger("taskq.worker")


def resident_mb() -> float:
    """This process's resident memory in MiB (peak RSS where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)


@dataclasses.dataclass(frozen=True, slots=True)
class Timed:
    """A running job with a time limit."""

    delivery: Delivery
    message: Message
    task: TaskBase[Any, Any]
    #: monotonic time at which the watchdog fails it
    deadline: float
    #: job.abort() was asked and the grace has passed: it fails as aborted, not as overrun
    aborted: bool = False

    @property
    def ran(self) -> float:
        """Seconds it has run."""
        slack = ASYNC_KILL_SLACK if self.task.is_async else 0.0
        return time.monotonic() - self.deadline + (self.message.timeout or 0.0) + slack


class Watchdog:
    def __init__(self, *, worker_id: str, stop: threading.Event, kill_on_timeout: bool, parent_pid: int | None,
                 max_memory_mb: float | None, on_overrun: Callable[[list[Timed]], None]) -> None:
        self.worker_id = worker_id
        self.stop = stop
        self.kill_on_timeout = kill_on_timeout
        self.parent_pid = parent_pid
        self.max_memory_mb = max_memory_mb
        self.on_overrun = on_overrun
        self._lock = threading.Lock()
        self._timed: dict[tuple[str, str, str], Timed] = {}
        #: jobs this watchdog failed (their own outcome, should one still come, does not stand)
        self._failed: set[tuple[str, str, str]] = set()
        #: sync jobs running now (with kill_on_timeout), for abort(): delivery key -> (message, task)
        self._running: dict[tuple[str, str, str], tuple[Delivery, Message, TaskBase[Any, Any]]] = {}

    @property
    def needed(self) -> bool:
        return bool(self.kill_on_timeout or self.parent_pid or self.max_memory_mb)

    def warn_unenforced(self, tasks: Iterable[TaskBase[Any, Any]], queues: Sequence[str]) -> None:
        """One line at start naming the sync tasks (of `queues`) whose timeout= this worker cannot
        enforce: on a thread without a supervisor, a body over its limit runs to its end."""
        if self.kill_on_timeout:
            return
        names = sorted(t.name for t in tasks if t.opts.timeout is not None and not t.is_async
                       and t.opts.queue in queues)
        if names:
            log.warning("timeout= cannot stop these sync tasks on threads: an overrun runs to its end, then fails; "
                        "taskq worker -p N kills it", tasks=names)

    def started(self, delivery: Delivery, message: Message, task: TaskBase[Any, Any]) -> None:
        if not self.kill_on_timeout:
            return
        with self._lock:
            if not task.is_async:
                self._running[delivery.key] = (delivery, message, task)
            if message.timeout is not None:
                slack = ASYNC_KILL_SLACK if task.is_async else 0.0
                self._timed[delivery.key] = Timed(delivery, message, task, time.monotonic() + message.timeout + slack)

    def abort(self, delivery: Delivery, grace: float) -> bool:
        """job.abort() was asked for a running sync job: fail it and end the process if it still
        runs after `grace` seconds (a supervisor's child only). False if it is not watched."""
        with self._lock:
            running = self._running.get(delivery.key)
            if running is None:
                return False
            _, message, task = running
            deadline = time.monotonic() + grace
            timed = self._timed.get(delivery.key)
            if timed is None or timed.deadline > deadline:
                self._timed[delivery.key] = Timed(delivery, message, task, deadline, aborted=True)
            return True

    def ended(self, delivery: Delivery, message: Message) -> bool:
        """Whether the run's own outcome stands (False: the watchdog already failed it)."""
        if not self.kill_on_timeout:
            return True
        with self._lock:
            self._running.pop(delivery.key, None)
            self._timed.pop(delivery.key, None)
            if delivery.key in self._failed:
                self._failed.discard(delivery.key)
                return False
            return True

    def run(self) -> None:
        next_memory_check = 0.0
        while not self.stop.wait(TICK):
            now = time.monotonic()
            if self.kill_on_timeout:
                with self._lock:
                    over = [t for t in self._timed.values() if t.deadline <= now]
                    for t in over:
                        del self._timed[t.delivery.key]
                        self._failed.add(t.delivery.key)
                if over:
                    self.on_overrun(over)
            if self.parent_pid and os.getppid() != self.parent_pid:
                log.warning("supervisor gone, stopping", worker=self.worker_id, supervisor_pid=self.parent_pid)
                self.stop.set()
            if self.max_memory_mb and now >= next_memory_check:
                next_memory_check = now + 1.0
                rss = resident_mb()
                if rss > self.max_memory_mb:
                    log.info("memory limit reached, recycling", worker=self.worker_id, rss_mb=round(rss, 1),
                             max_memory_mb=self.max_memory_mb)
                    self.stop.set()
