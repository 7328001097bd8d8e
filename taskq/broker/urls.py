"""Broker URL -> redis-py client: single Redis, Cluster, Sentinel, or fakeredis for memory://.

Slot routing and failover are redis-py's (`RedisCluster`, `Sentinel`); this module only reads
the URL forms of docs/protocol.md §1 and passes what they say on.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from taskq.errors import ConfigError

_memory_servers: dict[str, Any] = {}
_memory_lock = threading.Lock()


class Kind:
    """What a URL's client talks to (decides the script call path and how waits are grouped)."""

    REDIS = "redis"
    CLUSTER = "cluster"
    SENTINEL = "sentinel"
    MEMORY = "memory"


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A parsed multi-host URL: `scheme://[user:pass@]host:port[,host:port...][/path][?query]`."""

    tls: bool
    username: str | None
    password: str | None
    nodes: list[tuple[str, int]]
    path: list[str]
    query: dict[str, str]


def parse(url: str, default_port: int) -> Target:
    """Split a Cluster or Sentinel URL (urllib cannot: its netloc may hold several hosts)."""
    scheme, _, rest = url.partition("://")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if "?" in netloc:
        netloc, _, query = netloc.partition("?")
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(secret) or None
    nodes = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part.strip(), "", "")
        if not host:
            raise ConfigError(f"broker URL {scheme}://... has an empty host in {part!r}")
        try:
            nodes.append((host.strip("[]"), int(port) if port else default_port))
        except ValueError:
            raise ConfigError(f"broker URL {scheme}://... has a bad port in {part!r}") from None
    params = dict(parse_qsl(query, keep_blank_values=True))
    username = params.pop("username", username)
    password = params.pop("password", password)
    return Target(scheme.startswith("rediss"), username, password, nodes,
                  [unquote(p) for p in path.split("/") if p], params)


def _retry() -> Retry:
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 1)


def _redis(url: str, timeout: float) -> Any:
    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=_retry())


def _cluster(url: str, timeout: float) -> Any:
    t = parse(url, 6379)
    client_name = t.query.pop("client_name", None)
    if t.path or t.query:
        raise ConfigError("a redis+cluster:// URL takes no database and only the options password, "
                          "username, client_name: redis+cluster://[user:pass@]host:port[,host:port...]")
    # it asks the startup nodes for the slot map right away (Connection builds it on first use)
    return RedisCluster(
        startup_nodes=[ClusterNode(h, p) for h, p in t.nodes],  # type: ignore[no-untyped-call]
        username=t.username, password=t.password,
        ssl=t.tls, socket_connect_timeout=timeout, socket_timeout=timeout, client_name=client_name,
        # a failover takes a few seconds: keep trying (redis-py re-reads the slot map each time)
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 6),
    )


def _sentinel(url: str, timeout: float) -> Any:
    t = parse(url, 26379)
    if not t.path or len(t.path) > 2:
        raise ConfigError("a redis+sentinel:// URL names its primary: "
                          "redis+sentinel://[user:pass@]host:port[,host:port...]/MASTER_NAME[/DB]")
    try:
        db = int(t.path[1]) if len(t.path) == 2 else 0
    except ValueError:
        raise ConfigError(f"redis+sentinel:// database must be a number, got {t.path[1]!r}") from None
    sentinel_password = t.query.pop("sentinel_password", None)
    client_name = t.query.pop("client_name", None)
    if t.query:
        raise ConfigError(f"redis+sentinel:// takes only the options password, username, sentinel_password, "
                          f"client_name; got {', '.join(sorted(t.query))}")
    sentinel = Sentinel(
        t.nodes, socket_timeout=timeout, socket_connect_timeout=timeout,
        sentinel_kwargs={"password": sentinel_password, "ssl": t.tls, "socket_timeout": timeout,
                         "socket_connect_timeout": timeout, "retry": _retry()},
    )
    return sentinel.master_for(
        t.path[0], db=db, username=t.username, password=t.password, ssl=t.tls,
        socket_timeout=timeout, socket_connect_timeout=timeout, retry=_retry(), client_name=client_name,
    )


def _memory(url: str, timeout: float) -> Any:
    server = memory_server(url)
    import fakeredis

    return fakeredis.FakeRedis(server=server)


#: URL scheme -> how to build its client, and what it talks to
CLIENTS: dict[str, tuple[Callable[[str, float], Any], str]] = {
    "redis": (_redis, Kind.REDIS),
    "rediss": (_redis, Kind.REDIS),
    "unix": (_redis, Kind.REDIS),
    "redis+cluster": (_cluster, Kind.CLUSTER),
    "rediss+cluster": (_cluster, Kind.CLUSTER),
    "redis+sentinel": (_sentinel, Kind.SENTINEL),
    "rediss+sentinel": (_sentinel, Kind.SENTINEL),
    "memory": (_memory, Kind.MEMORY),
}


def memory_server(url: str) -> Any:
    """The fakeredis server of a memory:// URL (one per name, shared by its sync and async clients)."""
    try:
        import fakeredis  # only memory:// needs it (the extra taskq-redis[memory])
        import lupa  # noqa: F401 - fakeredis runs taskq's Lua scripts with it
    except ImportError:
        raise ConfigError("memory:// needs fakeredis and lupa: pip install 'taskq-redis[memory]'") from None

    with _memory_lock:
        return _memory_servers.setdefault(url, fakeredis.FakeServer(version=(7,)))
