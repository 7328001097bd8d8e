"""Outage: one process's view of whether Redis works, shared by its parts (fetch, settle, leases).

It logs one line when the first part starts failing and one when every part that failed works
again, so a Redis that refuses only some calls (at maxmemory, writes fail while lease renewals,
which may run out of memory, still work) does not make the log flap between "back" and "error".
"""

from __future__ import annotations

import threading
import time
from typing import Any

from taskq.errors import BrokerError, BrokerUnavailable

#: cap of the reconnect backoff while Redis is unreachable, in seconds
RECONNECT_MAX = 5.0


class Outage:
    def __init__(self, log: Any, **fields: Any) -> None:
        self.log = log
        self.fields = fields
        self._lock = threading.Lock()
        self._failing: set[str] = set()
        self._since: float | None = None

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, part: str, exc: BrokerError) -> float:
        """Record that `part` failed; returns seconds it should pause before trying again."""
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
            self._failing.add(part)
            down_for = time.monotonic() - (self._since or 0.0)
        if first:
            event = "redis unreachable" if isinstance(exc, BrokerUnavailable) else "redis error"
            self.log.error(event, part=part, error=str(exc), **self.fields)
        return min(RECONNECT_MAX, 0.1 + down_for / 2)

    def ok(self, part: str) -> None:
        """Record that `part` worked (cheap when nothing failed: the hot path calls it)."""
        if self._since is None:
            return
        with self._lock:
            self._failing.discard(part)
            if self._failing or self._since is None:
                return
            since, self._since = self._since, None
        self.log.info("redis back", after_s=round(time.monotonic() - since, 1), **self.fields)
