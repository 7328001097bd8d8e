"""The connection under a Redis broker: the client for a URL, script calls, and error mapping.

The broker modules build their commands on `Connection` and never see a raw redis-py error:
each becomes a one-line taskq error with any password hidden.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from taskq.broker import scripts
from taskq.errors import BrokerAuthError, BrokerError, BrokerOutOfMemory, BrokerUnavailable, ConfigError

#: default seconds one Redis call may take (connect, or wait for a reply) before BrokerUnavailable
TIMEOUT = 10.0

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


def _memory_client(url: str, timeout: float) -> Any:
    try:
        import fakeredis  # only memory:// needs it at run time
    except ImportError:  # pragma: no cover - the extra is part of the dev install
        raise ConfigError("memory:// needs fakeredis and lupa: pip install 'taskq[memory]'") from None
    with _memory_lock:
        server = _memory_servers.setdefault(url, fakeredis.FakeServer(version=(7,)))
    return fakeredis.FakeRedis(server=server)


def _redis_client(url: str, timeout: float) -> Any:
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
    )


#: URL scheme -> how to build its client, and whether it has sockets for the fast script path
CLIENTS: dict[str, tuple[Callable[[str, float], Any], bool]] = {
    "redis": (_redis_client, True),
    "rediss": (_redis_client, True),
    "unix": (_redis_client, True),
    "memory": (_memory_client, False),
}


class Connection:
    """A redis-py (or fakeredis) client for one URL, with the scripts loaded on it."""

    def __init__(self, url: str, timeout: float = TIMEOUT) -> None:
        scheme = url.split("://", 1)[0]
        if scheme not in CLIENTS or "://" not in url:
            raise ConfigError(f"unsupported broker URL {redact(url)!r}: use "
                              f"{', '.join(s + '://' for s in CLIENTS)}")
        build, sockets = CLIENTS[scheme]
        self.url = url
        self.timeout = timeout
        #: longest blocking wait per call: well inside the reply timeout, so a block is not an outage
        self.block_max = max(0.05, timeout / 2)
        self.client: Any = build(url, timeout)
        self._scripts = scripts.load(self.client, shebang=sockets)
        #: per-thread connections for script calls (real Redis only; fakeredis has no sockets)
        self._fast: threading.local | None = threading.local() if sockets else None

    def error(self, exc: redis.RedisError) -> BrokerError:
        """The taskq error for a redis-py one: one line, password hidden."""
        where = redact(self.url)
        text = str(exc)
        if isinstance(exc, (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)) or \
                text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
            return BrokerAuthError(f"Redis at {where} refused the credentials ({text})")
        if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
            return BrokerUnavailable(f"cannot reach Redis at {where} ({text})")
        if isinstance(exc, redis.exceptions.OutOfMemoryError) or text.startswith("OOM"):
            return BrokerOutOfMemory(f"Redis at {where} is out of memory (maxmemory reached); nothing was written")
        return BrokerError(f"Redis at {where} refused a command: {text}")

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise self.error(exc) from None

    def run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Call one script; its reply, or a taskq error."""
        try:  # no context manager here: this is every script call, the hot path
            if self._fast is None:
                return self._scripts[name](keys=list(keys), args=list(args))
            return self._evalsha(self._scripts[name], keys, args)
        except redis.RedisError as exc:
            raise self.error(exc) from None

    def script(self, name: str) -> Script:
        return self._scripts[name]

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
        raise redis.ConnectionError("script could not be loaded")

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
