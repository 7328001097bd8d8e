"""Undo taskq.log.configure() after a test: it sets process-wide state (structlog's defaults, the
root logger's handlers and level, redis-py's logger level)."""

from __future__ import annotations

import logging

import structlog

from taskq.log import REDIS_LOGGER


def reset_logging(redis_level: int = logging.NOTSET) -> None:
    """structlog and stdlib logging as a fresh process has them."""
    structlog.reset_defaults()
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.WARNING)
    logging.getLogger(REDIS_LOGGER).setLevel(redis_level)
