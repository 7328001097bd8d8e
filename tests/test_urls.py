"""Broker URLs: the Cluster and Sentinel forms, their one-line errors, and hidden passwords."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Mapping
from typing import Any

import pytest
import redis
from redis_server import command_calls

import taskq
from taskq.broker.urls import CLIENTS, parse, redact


def test_a_cluster_url_lists_its_startup_nodes_and_credentials() -> None:
    t = parse("rediss+cluster://ada:s%3Dcret@10.0.0.1:7000,10.0.0.2,[::1]:7002", 6379)
    assert t.tls and (t.username, t.password) == ("ada", "s=cret")
    assert t.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002)]
    assert t.path == [] and t.query == {}


def test_a_sentinel_url_names_the_primary_and_database() -> None:
    t = parse("redis+sentinel://:pw@s1:26380,s2/mymaster/3?sentinel_password=sp", 26379)
    assert not t.tls and (t.username, t.password) == (None, "pw")
    assert t.nodes == [("s1", 26380), ("s2", 26379)] and t.path == ["mymaster", "3"]
    assert t.query == {"sentinel_password": "sp"}


@pytest.mark.parametrize(("url", "message"), [
    ("redis+sentinel://127.0.0.1:1", "names its primary"),
    ("redis+sentinel://127.0.0.1:1/m/x", "database must be a number"),
    ("redis+sentinel://127.0.0.1:1/m?color=red", "takes only the options"),
    ("redis+cluster://127.0.0.1:1/0", "takes no database"),
    ("redis+cluster://127.0.0.1:x", "bad port"),
    ("redis+cluster://,127.0.0.1:1", "empty host"),
    ("postgres://127.0.0.1", "unsupported broker URL"),
])
def test_a_bad_url_is_a_one_line_config_error(url: str, message: str) -> None:
    with pytest.raises(taskq.ConfigError, match=message) as info:
        taskq.TaskQ(url).broker.ping()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("url", [
    "redis+cluster://ada:hunter2@127.0.0.1:1,127.0.0.1:2",
    "redis+sentinel://:hunter2@127.0.0.1:1/mymaster/0?sentinel_password=hunter2",
    "redis://127.0.0.1:1/0?password=hunter2",
])
def test_no_password_is_ever_printed(url: str) -> None:
    assert "hunter2" not in redact(url)
    with pytest.raises(taskq.BrokerError) as info:
        taskq.TaskQ(url, timeout=0.5).broker.ping()
    assert "hunter2" not in str(info.value) and "cannot reach Redis at" in str(info.value)


def test_memory_without_its_extra_says_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fakeredis", None)  # as if taskq-redis[memory] were not installed
    app = taskq.TaskQ("memory://no-extra")
    with pytest.raises(taskq.ConfigError,
                       match=r"memory:// needs fakeredis and lupa: pip install 'taskq-redis\[memory\]'"):
        app.broker.ping()


def _retry(retry: Any) -> tuple[Any, ...] | None:
    if retry is None:
        return None
    backoff = retry._backoff
    return (retry._retries, type(backoff).__name__, getattr(backoff, "_cap", None), getattr(backoff, "_base", None))


def _options(kwargs: Mapping[str, Any], tls: bool, retry: Any) -> dict[str, Any]:
    """What a client was told: timeouts, credentials, name, database, TLS and its retries."""
    return {"timeouts": (kwargs.get("socket_timeout"), kwargs.get("socket_connect_timeout")),
            "credentials": (kwargs.get("username"), kwargs.get("password")), "name": kwargs.get("client_name"),
            "db": kwargs.get("db"), "tls": tls, "retry": _retry(retry)}


def _pooled(client: Any) -> dict[str, Any]:
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    return _options(kwargs, "SSL" in pool.connection_class.__name__, kwargs.get("retry"))


def _told(client: Any) -> dict[str, Any]:
    """The options of a client of any scheme (and of a Sentinel client's sentinels)."""
    if hasattr(client, "nodes_manager"):  # Cluster: the sync client keeps them in its nodes manager
        kwargs = getattr(client, "connection_kwargs", None) or client.nodes_manager.connection_kwargs
        tls = bool(kwargs.get("ssl")) or kwargs.get("connection_class", type).__name__.startswith("SSL")
        return _options(kwargs, tls, client.retry)
    told = _pooled(client)
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    if manager is not None:
        told["sentinels"] = [_pooled(s) for s in manager.sentinels]
    return told


@pytest.mark.parametrize("url", [
    "rediss://ada:pw@127.0.0.1:1/2?client_name=me",
    "unix:///tmp/taskq-none.sock?db=3",
    "rediss+sentinel://ada:pw@127.0.0.1:1,127.0.0.1:2/mymaster/4?sentinel_password=sp&client_name=me",
    "cluster",
])
def test_the_sync_and_the_asyncio_client_of_a_url_get_the_same_options(url: str,
                                                                         request: pytest.FixtureRequest) -> None:
    """One builder per scheme: the asyncio producer's client has the worker's timeouts, name,
    credentials, TLS, sentinel password and retries."""
    if url == "cluster":  # the sync Cluster client reads the slot map as it is built
        nodes = str(request.getfixturevalue("cluster_url")).split("://", 1)[1]
        url = f"redis+cluster://{nodes}?client_name=me"
    builders = CLIENTS[url.split("://", 1)[0]]
    sync, aio = builders.sync(url, 3.0), builders.aio(url, 3.0)
    try:
        told = _told(sync)
        assert told["timeouts"] == (3.0, 3.0) and told["retry"] is not None
        assert told["name"] == ("me" if "client_name" in url else None)
        assert told["tls"] == url.startswith("rediss")
        assert _told(aio) == told
    finally:
        sync.close()


def test_a_memory_urls_two_clients_share_one_server() -> None:
    builders = CLIENTS["memory"]
    sync, aio = builders.sync("memory://shared", 3.0), builders.aio("memory://shared", 3.0)
    sync.set("k", "v")
    assert asyncio.run(aio.get("k")) == b"v"


def test_a_redis_client_asks_whether_it_is_on_a_cluster_node_once(redis_url: str) -> None:
    """The check of a redis:// URL costs one INFO per client (sync, and asyncio per loop), not
    one per connection or command: the hot path has no extra round trip."""
    app = taskq.TaskQ(redis_url)

    @app.task
    def noop(i: int) -> None: ...

    probe = redis.Redis.from_url(redis_url)
    probe.config_resetstat()
    assert app.broker  # opened (no I/O yet); each thread opens a connection of its own at once
    threads = [threading.Thread(target=lambda: [noop.delay(i) for i in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    app.broker.ping()
    assert app.broker.depths("default").ready == 80

    async def go() -> None:
        await asyncio.gather(*(noop.delay_async(i) for i in range(300)))  # several pipelined flushes
        await app.aclose()

    asyncio.run(go())
    calls = command_calls(probe)
    assert calls.get("info") == 2 and calls.get("evalsha", 0) + calls.get("eval", 0) >= 80, calls
