"""Broker URLs: the Cluster and Sentinel forms, their one-line errors, and hidden passwords."""

from __future__ import annotations

import sys

import pytest

import taskq
from taskq.broker.client import redact
from taskq.broker.urls import parse


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
