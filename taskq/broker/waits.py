"""Blocking on several Cluster slots at once: one BLPOP may not span slots, so a worker whose
queues sit in several slots blocks on each in its own thread, and the first to return stops
the others (a token on their wake keys) before the wait ends: no block outlives it, so a busy
worker never takes a wake-up token that an idle one should have had.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from taskq.broker.client import Connection


class SlotWaits:
    """Threads that BLPOP one group of same-slot keys each; each group ends with its wake key."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._size = 0

    def wait(self, groups: Sequence[Sequence[str]], block: float) -> bool:
        """True if a job's wake-up token (or this worker's own wake) came within `block` seconds."""
        pool = self._threads(len(groups))
        futures = [pool.submit(self._blpop, group, block) for group in groups]
        first, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
        woken = [f for f in first if f.result() is not None]
        stopped = [g for g, f in zip(groups, futures, strict=True) if not f.done()]
        if woken and stopped:
            self._push(stopped)
        replies = [f.result() for f in futures]  # every block has ended
        if stopped:  # a group that took a job's token instead leaves our token behind: remove it
            leftover = [g[-1] for g, r in zip(groups, replies, strict=True)
                        if g in stopped and (r is None or _key(r) != g[-1])]
            for key in leftover:  # one DEL each: they sit in different slots
                self.conn.client.delete(key)
        return bool(woken) or any(r is not None and _key(r) != g[-1]
                                  for g, r in zip(groups, replies, strict=True))

    def _blpop(self, keys: Sequence[str], block: float) -> Any:
        return self.conn.client.blpop(list(keys), timeout=block)

    def _push(self, groups: Sequence[Sequence[str]]) -> None:
        pipe = self.conn.client.pipeline(transaction=False)
        for group in groups:
            pipe.rpush(group[-1], "1").pexpire(group[-1], 60_000)
        pipe.execute()

    def _threads(self, n: int) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None or self._size < n:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="taskq-wait")
            self._size = n
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _key(reply: Any) -> str:
    key = reply[0]
    return key.decode() if isinstance(key, bytes) else str(key)
