"""Peak: how many bodies ran at once, counted from inside them (thread-safe)."""

from __future__ import annotations

import threading
from typing import Any


class Peak:
    """`with peak:` around a body; `peak.most` is the most that were inside at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> Peak:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self.now -= 1
