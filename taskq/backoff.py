"""Retry delays: exponential, capped, optionally jittered. Pure."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable


@dataclasses.dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n is min(max, base * factor ** (n - 1)) seconds.

    With jitter, the delay is drawn uniformly from [delay / 2, delay] so that a
    burst of failures does not retry in lockstep.
    """

    base: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.max < 0:
            raise ValueError("Backoff needs base >= 0, factor >= 1 and max >= 0")

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        exponent = max(0, attempt - 1)
        # cap the exponent so huge attempt counts cannot overflow a float
        raw = self.base * self.factor ** min(exponent, 64)
        delay = min(self.max, raw)
        if self.jitter:
            delay = delay / 2 + rng() * delay / 2
        return delay
