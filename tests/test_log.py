"""The log pipeline of taskq's commands (taskq/log.py): what --log-level debug lets through, and
how logfmt lines (stderr not a terminal) write values."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog
from logging_state import reset_logging

from taskq.log import REDIS_LOGGER, configure


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """stderr as configure() writes it; logging as it was after (configure sets global state)."""
    redis_level = logging.getLogger(REDIS_LOGGER).level
    try:
        yield capsys
    finally:
        reset_logging(redis_level)


def test_debug_leaves_out_redis_pys_per_connection_lines(logs: pytest.CaptureFixture[str]) -> None:
    logging.getLogger(REDIS_LOGGER).setLevel(logging.NOTSET)
    configure("debug", "json")
    logging.getLogger("redis.connection").debug("Failed to enable maintenance notifications: unknown subcommand")
    logging.getLogger("redis.connection").warning("a real problem")
    logging.getLogger("shop").debug("the app's own debug line")
    err = logs.readouterr().err
    assert "maintenance notifications" not in err
    assert "a real problem" in err and "the app's own debug line" in err


def test_redis_pys_debug_lines_come_when_asked_for(logs: pytest.CaptureFixture[str]) -> None:
    logging.getLogger(REDIS_LOGGER).setLevel(logging.DEBUG)  # the user asks (before configure or after)
    configure("debug", "json")
    logging.getLogger("redis.connection").debug("Failed to enable maintenance notifications: unknown subcommand")
    assert "maintenance notifications" in logs.readouterr().err


def test_logfmt_writes_lists_none_and_true_as_logfmt_parsers_read_them(logs: pytest.CaptureFixture[str]) -> None:
    configure("info", "console")  # stderr is not a terminal here: logfmt
    structlog.get_logger("taskq").info("worker stopped", queues=["default", "emails"], given_back_ids=[],
                                       spaced=("a b", "c"), commas=["a,b", "c"], url=None, flag=True,
                                       off=False, limits={"q": 1})
    [line] = [line for line in logs.readouterr().err.splitlines() if 'event="worker stopped"' in line]
    fields = line.split('event="worker stopped" ', 1)[1]
    assert fields == ('queues=default,emails given_back_ids= spaced="a b,c" commas="[\\"a,b\\", \\"c\\"]" '
                      'url=null flag=true off=false limits="{\\"q\\": 1}"'), line
