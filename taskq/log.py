"""Logging: the library only asks for loggers; the CLI (or a user) configures the pipeline.

configure() sets up structlog and routes the standard library's logging through the same
processors and renderer, so a task's own `logging.getLogger(...).info(...)` comes out in the
worker's format (key=value or JSON) with the running job's job_id, task, queue and attempt.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import MutableMapping
from typing import Any

import structlog

from taskq.context import log_sink, running

#: names of the fields bound to job log lines, the same everywhere
JOB_FIELDS = ("job_id", "task", "queue", "attempt", "duration_ms")

#: the level configure() set; per-job lines check it first, so a quiet worker builds no fields
_level = logging.DEBUG

#: redis-py's loggers: at debug they write a line per connection made (e.g. "Failed to enable
#: maintenance notifications" from every Redis without CLIENT MAINT_NOTIFICATIONS)
REDIS_LOGGER = "redis"


def enabled(level: int) -> bool:
    """Whether lines at `level` are emitted (True unless configure() set a higher level)."""
    return level >= _level


def get_logger(name: str = "taskq") -> Any:
    """A structlog logger; cheap until configured, filtered by level once configured."""
    return structlog.get_logger(name)


def add_job_context(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: the running job's fields, read only when a line is emitted (no cost
    per job), for any line logged while a task runs, by taskq, structlog or the stdlib."""
    message = running.get()
    if message is not None:
        event.setdefault("job_id", message.id)
        event.setdefault("task", message.task)
        event.setdefault("queue", message.queue)
        event.setdefault("attempt", message.attempt)
    return event


_SEQUENCES = (list, tuple, set, frozenset)
_PLAIN = frozenset({str, int, float, bool})


def logfmt_values(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor before the logfmt renderer: values as logfmt parsers (Go's
    go-logfmt, Grafana Loki's `| logfmt`) read them. A list is `a,b` (split(",") gives it back; as
    JSON when an item holds a comma), not Python's `['a', 'b']`; None is `null` (what go-logfmt
    writes for nil) where `key=` would read as an empty string; a dict is JSON."""
    for key, value in event.items():
        if type(value) in _PLAIN:  # nearly every value: one set lookup a field per line
            continue
        if value is None:
            event[key] = "null"
        elif isinstance(value, _SEQUENCES):
            items = [str(item) for item in value]
            event[key] = json.dumps(items) if any("," in item for item in items) else ",".join(items)
        elif isinstance(value, dict):
            event[key] = json.dumps(value, default=str)
    return event


class _Stderr:
    """sys.stderr as it is at each write, so loggers cached earlier follow a replaced stderr."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "info", fmt: str = "console") -> None:
    """Set up logging once for a taskq process: key=value (console) or JSON lines on stderr.

    taskq's own lines below `level` are dropped before any formatting
    (make_filtering_bound_logger); stdlib records below it are dropped by the root logger.
    """
    global _level
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    _level = numeric
    renderer: list[Any]
    if fmt == "json":
        renderer = [structlog.processors.JSONRenderer()]
    elif sys.stderr.isatty():  # a person reads it: aligned columns, colours
        renderer = [structlog.dev.ConsoleRenderer(colors=True)]
    else:  # a file or a log collector: logfmt key=value lines, at half the console renderer's cost per line
        # (True as key=true: a bare key, structlog's default, reads as an empty value in Go and Loki)
        renderer = [logfmt_values, structlog.processors.LogfmtRenderer(
            key_order=["timestamp", "level", "event"], drop_missing=True, bool_as_flag=False)]
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_job_context,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]  # one write a line
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, *renderer],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler, *([_job_handler] if _job_handler_users else [])]  # a running worker's stays
    root.setLevel(numeric)
    redis_log = logging.getLogger(REDIS_LOGGER)
    if numeric < logging.INFO and redis_log.level == logging.NOTSET:
        # quiet unless asked: a level set on it by the user (before this, or in the app) stands
        redis_log.setLevel(logging.INFO)
    logging.captureWarnings(True)  # warnings.warn() from task code: the same pipeline, not bare text


class JobLogHandler(logging.Handler):
    """Keeps the stdlib records a running task writes at INFO and above with its job (the
    worker's `context.log_sink`): a record written outside a job, or by taskq itself, costs one
    context variable read."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)

    def emit(self, record: logging.LogRecord) -> None:
        message = running.get()
        if message is None or record.name.startswith("taskq"):
            return
        sink = log_sink.get()
        if sink is not None:
            try:
                sink(message, record.levelno, record.getMessage())
            except Exception:  # a bad format string: logging's own report, not the task's failure
                self.handleError(record)


_job_handler = JobLogHandler()
_job_handler_users = 0
_job_handler_lock = threading.Lock()


def keep_job_records(on: bool) -> None:
    """Route stdlib records of running jobs to their job's log (on: a worker starts; off: it
    stopped). Counted, so several workers in one process share one handler on the root logger."""
    global _job_handler_users
    with _job_handler_lock:
        _job_handler_users += 1 if on else -1
        root = logging.getLogger()
        if _job_handler_users > 0 and _job_handler not in root.handlers:
            root.addHandler(_job_handler)
        elif _job_handler_users <= 0:
            _job_handler_users = 0
            root.removeHandler(_job_handler)
