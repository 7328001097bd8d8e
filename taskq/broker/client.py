"""The connection under a Redis broker: the client for a URL, script calls, and error mapping.

The broker modules build their commands on `Connection` and never see a raw redis-py error:
each becomes a one-line taskq error with any password hidden.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.commands.core import Script
from redis.exceptions import ClusterDownError, MovedError, ReadOnlyError, RedisClusterException, TryAgainError
from redis.sentinel import MasterNotFoundError

from taskq.broker import scripts
from taskq.broker.urls import CLIENTS, Kind, cluster_node_error, redact
from taskq.errors import BrokerAuthError, BrokerError, BrokerOutOfMemory, BrokerUnavailable, ConfigError

#: default seconds one Redis call may take (connect, or wait for a reply) before BrokerUnavailable
TIMEOUT = 10.0

class Connection:
    """A redis-py (or fakeredis) client for one URL, with the scripts loaded on it."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        scheme = url.split("://", 1)[0]
        if scheme not in CLIENTS or "://" not in url:
            raise ConfigError(f"unsupported broker URL {redact(url)!r}: use "
                              f"{', '.join(s + '://' for s in CLIENTS)}")
        #: how this URL's clients are built (the asyncio broker builds its own with them)
        self.builders = CLIENTS[scheme]
        self.kind = self.builders.kind
        self.url = url
        self.timeout = timeout
        #: longest blocking wait per call: well inside the reply timeout, so a block is not an outage
        self.block_max = max(0.05, timeout / 2)
        #: a Cluster client has no one pool: each call goes through redis-py's slot routing
        self.cluster = self.kind == Kind.CLUSTER
        #: per-thread connections for script calls (one server with sockets: Redis, Sentinel's primary)
        self._fast: threading.local | None = threading.local() if self.kind in (Kind.REDIS, Kind.SENTINEL) \
            else None
        self._lock = threading.Lock()
        #: per-thread connections to Cluster nodes, by node name (host:port)
        self._node_conns = threading.local()
        if not self.cluster:
            _ = self._scripts  # builds the client now; a Cluster client asks for the slot map: on first use

    @functools.cached_property
    def client(self) -> Any:
        """The redis-py (or fakeredis) client, built once."""
        with self._lock:
            if "client" in self.__dict__:  # another thread built it while this one waited
                return self.__dict__["client"]
            try:
                return self.builders.sync(self.url, self.timeout)
            except (redis.RedisError, RedisClusterException) as exc:
                raise self.error(exc) from None

    @functools.cached_property
    def _scripts(self) -> dict[str, Script]:
        return scripts.load(self.client, shebang=self.kind != Kind.MEMORY)

    def error(self, exc: Exception) -> BrokerError | ConfigError:
        """The taskq error for a redis-py one: one line, password hidden."""
        where = redact(self.url)
        text = str(exc)
        if isinstance(exc, MovedError) and not self.cluster:
            return self.cluster_node_error()
        if isinstance(exc, RedisClusterException):
            return BrokerUnavailable(f"cannot reach Redis at {where} ({text})")
        if isinstance(exc, MasterNotFoundError):  # its text lists every sentinel client's settings
            return BrokerUnavailable(f"cannot reach Redis at {where} ({text.split(' : ', 1)[0]})")
        if isinstance(exc, (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)) or \
                text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            return BrokerAuthError(f"Redis at {where} refused the credentials ({text})")
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError, ClusterDownError, TryAgainError, ReadOnlyError)):
            return BrokerUnavailable(f"cannot reach Redis at {where} ({text})")
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
            return BrokerOutOfMemory(f"Redis at {where} is out of memory (maxmemory reached); nothing was written")
        return BrokerError(f"Redis at {where} refused a command: {text}")

    def block(self, timeout: float) -> float:
        """Seconds one blocking call may wait: `timeout`, within (0, block_max]."""
        return min(self.block_max, max(0.001, timeout))

    def cluster_node_error(self) -> ConfigError:
        """A redis:// URL that names a node of a Redis Cluster."""
        return cluster_node_error(self.url)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.error(exc) from None

    def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Call one script; its reply, or a taskq error."""
        try:  # no context manager here: this is every script call, the hot path
            if self._fast is not None:
                return self._evalsha(self._scripts[name], keys, args)
            if self.cluster:
                return self._node_evalsha(self._scripts[name], keys, args)
            return self._scripts[name](keys=list(keys), args=list(args))
        except (redis.RedisError, RedisClusterException) as exc:
            raise self.error(exc) from None

    def slot(self, key: str) -> int:
        """The Cluster slot of a key (0 everywhere else: one server holds every key)."""
        return int(self.client.keyslot(key)) if self.cluster else 0

    def run_many(self, calls: Sequence[tuple[str, Sequence[str], Sequence[Any]]]) -> list[Any]:
        """Several script calls in one pipeline (on Cluster, redis-py sends one per node). EVAL with
        the body on Cluster: a node that just took over after a failover has no scripts cached."""
        with self.errors():
            pipe = self.client.pipeline(transaction=False)
            for name, keys, args in calls:
                script = self._scripts[name]
                if self.cluster:
                    pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
                else:
                    script(keys=list(keys), args=list(args), client=pipe)
            return list(pipe.execute())

    def _evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA on this thread's own connection: redis-py's send/read without the pool,
        retry and instrumentation layers per call (about half the client time of a script
        call). Like the client, it reconnects and tries once more on a connection error."""
        local = self._fast
        assert local is not None
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # a fork must not share the parent's socket
            local.conn, local.pid = self.client.connection_pool.make_connection(), os.getpid()
            conn = local.conn
            conn.connect()  # send_command alone would not ask the sentinels where the primary is
        for attempt in range(3):
            try:
                conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
                return conn.read_response()
            except redis.exceptions.NoScriptError:  # Redis restarted or flushed its scripts
                script.sha = self.client.script_load(script.script)
            except (redis.ConnectionError, redis.TimeoutError):
                conn.disconnect()
                if attempt:
                    raise
                time.sleep(0.05)
                conn.connect()
        raise redis.ConnectionError("script could not be loaded")

    def _node_evalsha(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """On Cluster: EVALSHA on this thread's own connection to the node that redis-py's slot
        map names for the keys (a third of the client time of RedisCluster's full path). Anything
        but a reply (a redirect after a failover or resharding, a dead node, an unloaded script)
        goes through RedisCluster itself, which follows it and refreshes its slot map."""
        local = self._node_conns
        node = self.client.get_node_from_key(keys[0])
        conns: dict[str, Any] = local.__dict__.setdefault("conns", {})
        conn = conns.get(node.name)
        try:
            if conn is None:
                conn = conns[node.name] = node.redis_connection.connection_pool.make_connection()
                conn.connect()
            conn.send_command("EVALSHA", script.sha, len(keys), *keys, *args)
            return conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError):
            conns.pop(node.name, None)
            if conn is not None:
                conn.disconnect()
        except redis.ResponseError as exc:  # MOVED, ASK, TRYAGAIN, CLUSTERDOWN, NOSCRIPT: redis-py's
            if not isinstance(exc, (MovedError, ClusterDownError, TryAgainError, redis.exceptions.NoScriptError,
                                    ReadOnlyError)):
                raise
        return script(keys=list(keys), args=list(args))

    def pipelined(self, name: str, keys: Sequence[str], batches: Sequence[Sequence[Any]]) -> list[Any]:
        """Run one script over several argument batches, sending batch k+1 while Redis runs batch k
        (replies are read at the end), so the client's command packing overlaps the server's work.
        EVAL with the body, not EVALSHA: a script cache flushed mid-stream cannot fail a batch."""
        if self._fast is None or len(batches) < 2:
            return [self.run(name, keys, args) for args in batches]
        body = self._scripts[name].script
        pool = self.client.connection_pool
        conn = pool.get_connection()
        try:
            for args in batches:
                conn.send_command("EVAL", body, len(keys), *keys, *args)
            replies: list[Any] = []
            for _ in batches:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as exc:  # read every reply, so the connection stays in step
                    replies.append(exc)
        except redis.RedisError as exc:
            conn.disconnect()
            raise self.error(exc) from None
        finally:
            pool.release(conn)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise self.error(reply)
        return replies

    def close(self) -> None:
        conn = getattr(self._fast, "conn", None)
        if conn is not None:
            conn.disconnect()
        for node_conn in getattr(self._node_conns, "conns", {}).values():
            node_conn.disconnect()
        if "client" in self.__dict__:
            self.client.close()


def text(value: Any) -> str | None:
    """A reply value as str (bytes decoded, replacing what is not UTF-8)."""
    if value is None:
        return None
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def integer(value: Any) -> int | None:
    """A stored decimal as int, or None if absent or not a whole number."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
