"""Blocking on several Cluster slots at once: one BLPOP may not span slots, so a worker whose
queues sit in several slots keeps one block per slot, each in its own thread.

The first block to take a token ends the wait. The others stay blocked (their slots are still
watched when the worker next waits: no new command for them), but while the worker is busy a
block that takes a job's token pushes it straight back and ends, so an idle peer wakes for the
job and no busy worker sits on a token. A block that times out while no wait listens ends too.
"""

from __future__ import annotations

import contextlib
import queue as queue_mod
import threading
from collections.abc import Sequence
from typing import Any

from taskq.broker.client import Connection


class SlotWaits:
    """The blocks of one worker: at most one outstanding BLPOP per group of same-slot keys
    (each group ends with the worker's wake key in that slot)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        #: groups (by index) with a BLPOP outstanding
        self._blocking: set[int] = set()
        #: the listening wait's inbox; None while the worker is not waiting
        self._inbox: queue_mod.SimpleQueue[Any] | None = None

    def wait(self, groups: Sequence[Sequence[str]], block: float) -> list[str] | None:
        """The key whose token was taken within `block` seconds (a wake key for wake()), or None."""
        inbox: queue_mod.SimpleQueue[Any] = queue_mod.SimpleQueue()
        with self._lock:
            self._inbox = inbox
            fresh = [i for i in range(len(groups)) if i not in self._blocking]
            self._blocking.update(fresh)
        for i in fresh:
            threading.Thread(target=self._block, args=(i, groups[i]), name="taskq-wait", daemon=True).start()
        try:
            reply = inbox.get(timeout=block)
        except queue_mod.Empty:
            with self._lock:
                if self._inbox is inbox:  # nobody answered: stop listening
                    self._inbox = None
                    return None
            reply = inbox.get_nowait()  # a block answered as the wait ran out (under the lock)
        if isinstance(reply, BaseException):
            raise reply
        return [_key(reply)]

    def _block(self, i: int, group: Sequence[str]) -> None:
        keys = list(group)
        while True:
            with self._lock:
                if self._inbox is None:  # the worker is busy: let this slot go until it waits again
                    self._blocking.discard(i)
                    return
            try:
                reply = self.conn.client.blpop(keys, timeout=self.conn.block_max)
            except Exception as exc:  # the listening wait raises it
                with self._lock:
                    self._blocking.discard(i)
                    inbox, self._inbox = self._inbox, None
                    if inbox is not None:
                        inbox.put(exc)
                return
            if reply is None:
                continue
            with self._lock:
                self._blocking.discard(i)
                inbox, self._inbox = self._inbox, None  # the first answer ends the wait
                if inbox is not None:
                    inbox.put(reply)
            if inbox is None and _key(reply) != keys[-1]:  # a job's token nobody here waits for
                with contextlib.suppress(Exception):  # else the job stays ready: a safety fetch finds it
                    self.conn.client.rpush(_key(reply), "1")
            return

    def close(self) -> None:
        """Stop listening; outstanding blocks end at their timeout (daemon threads) or at a wake."""
        with self._lock:
            self._inbox = None


def _key(reply: Any) -> str:
    key = reply[0]
    return key.decode() if isinstance(key, bytes) else str(key)
