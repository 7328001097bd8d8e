"""The broker layer: the contract (base.py) and its implementations; all Redis I/O is here."""

from __future__ import annotations

from collections.abc import Callable

from taskq.broker import aio as _aio  # noqa: F401 - now, not on an event loop's first call (it holds the loop)
from taskq.broker.base import DEFAULT_NAMESPACE, Broker, Policy
from taskq.broker.client import TIMEOUT
from taskq.broker.redis import RedisBroker
from taskq.broker.urls import redact
from taskq.errors import ConfigError

__all__ = ["SCHEMES", "Broker", "Policy", "open_broker", "redact"]

#: URL scheme -> the broker implementation for it
SCHEMES: dict[str, Callable[..., Broker]] = {
    "redis": RedisBroker,
    "rediss": RedisBroker,
    "unix": RedisBroker,
    "redis+cluster": RedisBroker,  # redis-py's RedisCluster routes each call to its slot's node
    "rediss+cluster": RedisBroker,
    "redis+sentinel": RedisBroker,  # redis-py's Sentinel finds the primary, and the new one after a failover
    "rediss+sentinel": RedisBroker,
    "memory": RedisBroker,  # the same scripts on fakeredis, in this process
}


def open_broker(url: str, *, namespace: str = DEFAULT_NAMESPACE, timeout: float = TIMEOUT,
                policy: Policy | None = None) -> Broker:
    """The broker for a URL, picked by its scheme (see SCHEMES)."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    factory = SCHEMES.get(scheme)
    if factory is None:
        raise ConfigError(f"unsupported broker URL {redact(url)!r}: use "
                          f"{', '.join(s + '://' for s in SCHEMES)}")
    return factory(url, namespace=namespace, timeout=timeout, policy=policy)
