"""JobLogs: the log lines of the jobs a worker runs, held in memory and sent in batches.

A task's `current_job().log(text)` and its stdlib records at INFO and above (taskq.log's
JobLogHandler) land here on the job's own thread: an append to the job's buffer, no I/O. They
reach Redis with the next batch: the lease keeper's round (every lease/3 s, every job's lines in
one call per queue), the settle call of the job's outcome (in it: no call of their own), or the
job's next progress report (in the same script call). Lines are keyed by
(queue, job id), and a record knows its job through the context variables set for its run, so
under -c 8 each job's lines go to its own list only.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from taskq.errors import BrokerError
from taskq.log import get_logger
from taskq.message import Message

log = get_logger("taskq.worker")

#: lines a job keeps (lua/lib/logs.lua keeps the same in Redis) and characters a line keeps
LOG_LINES = 100
LINE_CHARS = 500


class LogBroker(Protocol):
    def append_logs(self, queue: str, lines: Mapping[str, Sequence[str]]) -> int: ...


class JobLogs:
    """The unsent lines of running jobs, by (queue, job id); at most LOG_LINES each."""

    def __init__(self, broker: LogBroker, quiet: Iterable[str] = ()) -> None:
        self.broker = broker
        #: tasks declared with keep_logs=False: their lines are dropped where they are written
        self.quiet = frozenset(quiet)
        self._lines: dict[tuple[str, str], collections.deque[str]] = {}
        # the job threads append while the lease keeper and the settler take: one short lock
        self._lock = threading.Lock()

    def write(self, message: Message, level: int, text: str) -> None:
        """Keep one line of a running job (called on the job's thread: no I/O)."""
        if message.task in self.quiet:
            return
        line = f"{time.time_ns() // 1_000_000} {logging.getLevelName(level)} {text[:LINE_CHARS]}"
        key = (message.queue, message.id)
        with self._lock:
            lines = self._lines.get(key)
            if lines is None:
                lines = self._lines[key] = collections.deque(maxlen=LOG_LINES)
            lines.append(line)

    def __bool__(self) -> bool:
        return bool(self._lines)

    def take(self, queue: str, job_id: str) -> list[str]:
        """A job's unsent lines, now the caller's to send (a progress report carries them)."""
        if not self._lines:
            return []
        with self._lock:
            lines = self._lines.pop((queue, job_id), None)
        return list(lines) if lines else []

    def flush(self, queue: str | None = None, ids: Sequence[str] | None = None) -> None:
        """Send the unsent lines (of one queue's `ids`, or every job's): one call per queue.
        Through an outage they are dropped with a warning: logs are best effort."""
        if not self._lines:  # the common case: nothing logged, nothing to do
            return
        with self._lock:
            if ids is None:
                keys = [k for k in self._lines if queue is None or k[0] == queue]
            else:
                keys = [k for k in ((queue or "", i) for i in ids) if k in self._lines]
            taken = [(k, self._lines.pop(k)) for k in keys]
        by_queue: dict[str, dict[str, list[str]]] = {}
        for (q, job_id), lines in taken:
            by_queue.setdefault(q, {})[job_id] = list(lines)
        for q, lines_of in by_queue.items():
            try:
                self.broker.append_logs(q, lines_of)
            except BrokerError as exc:
                log.warning("job log lines not stored", queue=q, jobs=len(lines_of), error=str(exc))
