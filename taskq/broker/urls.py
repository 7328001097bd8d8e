"""Broker URL -> redis-py clients (blocking and asyncio): single Redis, Cluster, Sentinel, or
fakeredis for memory://.

Slot routing and failover are redis-py's (`RedisCluster`, `Sentinel`); this module only reads
the URL forms of docs/protocol.md §1 and passes what they say on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.cluster
import redis.retry
import redis.sentinel
from redis.backoff import ExponentialBackoff

from taskq.errors import ConfigError

_memory_servers: dict[str, Any] = {}
_memory_lock = threading.Lock()

#: URL query parameters whose values are secrets
_SECRET_PARAMS = re.compile(r"^(password|sentinel_password|ssl_password)$", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL with every password (user:PASS@ and ?password=) replaced by ***, for logs and errors."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SECRET_PARAMS.match(k) for k, _ in pairs):
            query = urlencode([(k, "***" if _SECRET_PARAMS.match(k) else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def cluster_node_error(url: str) -> ConfigError:
    """The error for a redis:// URL that names a node of a Redis Cluster."""
    hosts = urlsplit(url).netloc.rsplit("@", 1)[-1]
    return ConfigError(f"Redis at {redact(url)} is a node of a Redis Cluster: use redis+cluster://{hosts}")


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


def _retry(aio: bool, retries: int = 1, cap: float = 0.5, base: float = 0.05) -> Any:
    """The retry policy of a client (redis-py has one class per client flavour)."""
    backoff = ExponentialBackoff(cap=cap, base=base)
    return redis.asyncio.retry.Retry(backoff, retries) if aio else redis.retry.Retry(backoff, retries)


class NotAClusterNode:
    """A redis:// client's connect hook: its first connection asks `INFO cluster` (once per
    client, not per command), and if the server is a node of a Redis Cluster, that connection and
    every later one fail with the one-line error naming the cluster scheme; a command sent to the
    node would otherwise see the keys of the node's own slots only (an empty `taskq status`, a
    job stored beside the cluster's), or fail with a MOVED much later."""

    def __init__(self, url: str) -> None:
        self.url = url
        #: whether the server is a cluster node; None until a connection asked
        self.node: bool | None = None
        #: connections opened at once (a worker's threads, a loop's tasks) wait for the first to ask
        self._lock = threading.Lock()
        self._aio_lock: asyncio.Lock | None = None  # the asyncio client's: it belongs to one loop

    def __call__(self, conn: Any) -> None:
        conn.on_connect()
        if self.node is None:
            with self._lock:
                if self.node is None:
                    try:
                        conn.send_command("INFO", "cluster")
                        self._heard(conn.read_response())
                    except redis.ResponseError:  # INFO renamed or not allowed: there is no telling, go on
                        self.node = False
        if self.node:
            raise cluster_node_error(self.url)

    async def aio(self, conn: Any) -> None:
        await conn.on_connect()
        if self.node is None:
            self._aio_lock = self._aio_lock or asyncio.Lock()
            async with self._aio_lock:
                if self.node is None:
                    try:
                        await conn.send_command("INFO", "cluster")
                        self._heard(await conn.read_response())
                    except redis.ResponseError:
                        self.node = False
        if self.node:
            raise cluster_node_error(self.url)

    def _heard(self, reply: Any) -> None:
        info = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        self.node = "cluster_enabled:1" in info


def _redis(url: str, timeout: float, aio: bool) -> Any:
    check = NotAClusterNode(url)
    flavour: Any = redis.asyncio.Redis if aio else redis.Redis
    return flavour.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=_retry(aio),
                            redis_connect_func=check.aio if aio else check)


def _cluster(url: str, timeout: float, aio: bool) -> Any:
    t = parse(url, 6379)
    client_name = t.query.pop("client_name", None)
    if t.path or t.query:
        raise ConfigError("a redis+cluster:// URL takes no database and only the options password, "
                          "username, client_name: redis+cluster://[user:pass@]host:port[,host:port...]")
    flavour: Any = redis.asyncio.cluster if aio else redis.cluster
    # the sync client asks the startup nodes for the slot map right away (Connection builds it on
    # first use), the asyncio one on initialize()
    return flavour.RedisCluster(
        startup_nodes=[flavour.ClusterNode(h, p) for h, p in t.nodes], username=t.username, password=t.password,
        ssl=t.tls, socket_connect_timeout=timeout, socket_timeout=timeout, client_name=client_name,
        # a failover takes a few seconds: keep trying (redis-py re-reads the slot map each time)
        retry=_retry(aio, 6, cap=1.0, base=0.1),
    )


def _sentinel(url: str, timeout: float, aio: bool) -> Any:
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
    flavour: Any = redis.asyncio.sentinel if aio else redis.sentinel
    sentinel = flavour.Sentinel(
        t.nodes, socket_timeout=timeout, socket_connect_timeout=timeout,
        sentinel_kwargs={"password": sentinel_password, "ssl": t.tls, "socket_timeout": timeout,
                         "socket_connect_timeout": timeout, "retry": _retry(aio)},
    )
    return sentinel.master_for(
        t.path[0], db=db, username=t.username, password=t.password, ssl=t.tls,
        socket_timeout=timeout, socket_connect_timeout=timeout, retry=_retry(aio), client_name=client_name,
    )


def _memory(url: str, timeout: float, aio: bool) -> Any:
    server = memory_server(url)
    import fakeredis

    return fakeredis.FakeAsyncRedis(server=server) if aio else fakeredis.FakeRedis(server=server)


@dataclasses.dataclass(frozen=True, slots=True)
class Builders:
    """How the clients of one URL scheme are built: the blocking one (threads) and the asyncio
    one (event loops), from one reading of the URL, so both get the same options."""

    #: what the clients talk to (a Kind)
    kind: str
    build: Callable[[str, float, bool], Any]

    def sync(self, url: str, timeout: float) -> Any:
        return self.build(url, timeout, False)

    def aio(self, url: str, timeout: float) -> Any:
        return self.build(url, timeout, True)


#: URL scheme -> how to build its clients, and what they talk to
CLIENTS: dict[str, Builders] = {
    "redis": Builders(Kind.REDIS, _redis),
    "rediss": Builders(Kind.REDIS, _redis),
    "unix": Builders(Kind.REDIS, _redis),
    "redis+cluster": Builders(Kind.CLUSTER, _cluster),
    "rediss+cluster": Builders(Kind.CLUSTER, _cluster),
    "redis+sentinel": Builders(Kind.SENTINEL, _sentinel),
    "rediss+sentinel": Builders(Kind.SENTINEL, _sentinel),
    "memory": Builders(Kind.MEMORY, _memory),
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
