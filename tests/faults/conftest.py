"""Fixtures of the fault tests: a second redis-server for the ledger, the app pointed at the
broker under test, and a pool of worker subprocesses killed (by pid) at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from beats import Beats
from harness import Ledger, Workers, faultapp_at
from redis_server import RedisServer

import taskq


@pytest.fixture(scope="session")
def ledger_server() -> Iterator[RedisServer]:
    """A second redis-server, for the evidence only."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def ledger(ledger_server: RedisServer) -> Iterator[Ledger]:
    ledger_server.client().flushall()
    book = Ledger(ledger_server.url)
    yield book
    book.client.close()


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client on the broker's redis-server (to inspect or forge taskq's keys)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def app(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[taskq.TaskQ]:
    """faultapp.app pointed at the test's redis-server."""
    yield from faultapp_at(redis_url, monkeypatch)


@pytest.fixture
def workers(redis_url: str, ledger: Ledger, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(redis_url, ledger.url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


@pytest.fixture
def beats(redis_url: str, tmp_path: Path) -> Iterator[Beats]:
    pool = Beats(redis_url, tmp_path)
    yield pool
    pool.cleanup()
