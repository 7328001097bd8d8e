"""Fixtures: a real redis-server the suite starts itself, and apps on every backend."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import taskq

sys.path.insert(0, str(Path(__file__).parent))

from deployments import deployments
from postgres_server import PostgresServer
from redis_groups import ClusterGroup, SentinelGroup
from redis_server import RedisServer


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL for the session (as the postgres OS user when run as root)."""
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer) -> str:
    """A fresh, empty database of the session's PostgreSQL."""
    return postgres_server.new_database()


@pytest.fixture(scope="session")
def cluster_group() -> Iterator[ClusterGroup]:
    """A 3-master + 3-replica Redis Cluster for the session; tests reset it before use."""
    group = ClusterGroup()
    yield group
    group.stop()


@pytest.fixture(scope="session")
def sentinel_group() -> Iterator[SentinelGroup]:
    """A primary, a replica and 3 sentinels for the session; tests reset it before use."""
    group = SentinelGroup()
    yield group
    group.stop()


@pytest.fixture
def cluster_url(cluster_group: ClusterGroup) -> str:
    cluster_group.reset()
    return cluster_group.url


@pytest.fixture
def sentinel_url(sentinel_group: SentinelGroup) -> str:
    sentinel_group.reset()
    return sentinel_group.url


#: Redis Cluster and Sentinel (the deployments beyond one server)
deployment_url = deployments("deployment_url", "cluster", "sentinel")
#: memory:// (fakeredis, the same Lua) and a real redis-server: what most suites run on
url = deployments("url", "memory", "redis")


@pytest.fixture
def app(url: str) -> taskq.TaskQ:
    """A fresh app per test with short leases, so tests own their tasks."""
    return taskq.TaskQ(url, lease=2)
