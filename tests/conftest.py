"""Fixtures: a real redis-server the suite starts itself, and apps on every backend."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import taskq

sys.path.insert(0, str(Path(__file__).parent))

from redis_server import RedisServer

_counter = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests flush it before use."""
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    redis_server.client().flushall()
    return redis_server.url


@pytest.fixture(params=["memory", "redis"])
def url(request: pytest.FixtureRequest) -> str:
    """Every backend: memory:// (fakeredis, same Lua) and a real redis-server."""
    if request.param == "memory":
        return f"memory://test-{next(_counter)}"
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
def app(url: str) -> taskq.TaskQ:
    """A fresh app per test with short leases, so tests own their tasks."""
    return taskq.TaskQ(url, lease=2)
