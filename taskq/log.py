"""Logging: the library only asks for loggers; the CLI (or a user) configures structlog."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

#: names of the fields bound to job log lines, the same everywhere
JOB_FIELDS = ("job_id", "task", "queue", "attempt", "duration_ms")


#: the level configure() set; per-job lines check it first, so a quiet worker builds no fields
_level = logging.DEBUG


def enabled(level: int) -> bool:
    """Whether lines at `level` are emitted (True unless configure() set a higher level)."""
    return level >= _level


def get_logger(name: str = "taskq") -> Any:
    """A structlog logger; cheap until configured, filtered by level once configured."""
    return structlog.get_logger(name)


def configure(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog once for a taskq process: key=value (console) or JSON lines on stderr.

    Levels below `level` are dropped before any formatting (make_filtering_bound_logger).
    """
    global _level
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    _level = numeric
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
