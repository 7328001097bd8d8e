"""The broker layer: all Redis I/O (keys, Lua scripts, connections)."""

from __future__ import annotations

from taskq.broker.redis import TIMEOUT, Claim, Delivery, JobState, RedisBroker, ScheduleState, redact
from taskq.errors import ConfigError

__all__ = ["Claim", "Delivery", "JobState", "RedisBroker", "ScheduleState", "open_broker", "redact"]

#: URL schemes taskq accepts
SCHEMES = ("redis://", "rediss://", "unix://", "memory://")


def open_broker(url: str, timeout: float = TIMEOUT) -> RedisBroker:
    """A broker for redis://, rediss://, unix:// or memory:// (in-process, no server)."""
    if not url.startswith(SCHEMES):
        raise ConfigError(f"unsupported broker URL {redact(url)!r}: use redis://, rediss://, unix:// or memory://")
    return RedisBroker(url, timeout)
