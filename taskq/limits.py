"""Flow control declared per queue (app.queue()) and per task (@app.task(rate_limit=,
max_running=)): backpressure on the ready backlog, global rate limits and concurrency caps.

Every limit is enforced in Redis: backpressure inside the enqueue scripts (lua/lib/room.lua), so
it holds across every producer; rate limits and caps where fetch leases a job (lua/ops/fetch.lua,
lua/lib/gate.lua), so they hold across every worker. This module holds the declarations and the
producer's side of `on_full="block"`: wait without polling (a fetch hands out room tokens).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from taskq.broker.base import PartitionLimits
from taskq.errors import ConfigError, QueueFull

OnFull = Literal["raise", "block"]
T = TypeVar("T")
#: rate limit units -> window in ms
_WINDOWS = {"s": 1000, "m": 60_000, "h": 3_600_000}


def parse_rate(text: str, what: str) -> tuple[int, int]:
    """"100/m" -> (100, 60000): at most 100 per sliding minute."""
    count, _, unit = text.partition("/") if isinstance(text, str) else ("", "", "")
    if not count.strip().isdigit() or int(count) < 1 or unit.strip() not in _WINDOWS:
        raise ConfigError(f"{what}: rate_limit must look like '100/s', '50/m' or '10/h', got {text!r}")
    return int(count), _WINDOWS[unit.strip()]


class RoomWaiter(Protocol):
    def wait_room(self, queue: str, timeout: float) -> bool: ...


class AsyncRoomWaiter(Protocol):
    async def wait_room(self, queue: str, timeout: float) -> bool: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Adaptive:
    """An adaptive partition_max_running (app.queue()): each partition's limit starts at `start` and
    grows by one slot per success until a job raises RateLimited(partition=True) or overruns its
    time limit; that cuts it to 9/10 and to the partition's jobs then running (1 at least), and from
    then on it grows by a tenth of a slot per limit's worth of successes, up to `max`: slow start,
    then additive increase and multiplicative decrease, per partition, shared by every worker."""

    start: int = 1
    max: int = 64

    def __post_init__(self) -> None:
        for name, value in (("start", self.start), ("max", self.max)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"Adaptive {name} must be an int >= 1, got {value!r}")
        if self.start > self.max:
            raise ConfigError(f"Adaptive start must be <= max, got start={self.start} max={self.max}")


#: events a queue's stream keeps by default (lua/lib/events.lua has the same default)
DEFAULT_EVENTS = 10_000
#: succeeded job records a queue keeps by default (lua/lib/finish.lua has the same default): at
#: about 250 bytes each, 25 MB of Redis per queue at any speed; each also expires after result_ttl
DEFAULT_KEEP_SUCCEEDED = 100_000
#: succeeded records of a queue that keep their message by default (lua/lib/finish.lua has the same
#: default): at most that many messages per queue, each at most max_message_bytes
DEFAULT_KEEP_ARGS = 1_000


@dataclasses.dataclass(frozen=True, slots=True)
class QueuePolicy:
    """What app.queue() declared for one queue."""

    name: str
    #: most ready jobs the queue may hold before enqueues are refused (None: no limit)
    max_ready: int | None = None
    #: when full: "raise" QueueFull at once, or "block" up to block_timeout for room, then raise
    on_full: OnFull = "raise"
    block_timeout: float = 30.0
    #: at most N starts per window across every worker: "N/s", "N/m" or "N/h" (None: no limit)
    rate_limit: str | None = None
    #: most of the queue's jobs running (or reserved) at once across every worker (None: no cap)
    max_running: int | None = None
    #: about how many events its stream keeps (app.events()); 0: the queue writes none
    events: int = DEFAULT_EVENTS
    #: the newest N succeeded records kept (older ones deleted as jobs succeed; None: each
    #: until result_ttl); one a result() waits on, and a workflow step's, are not counted
    keep_succeeded: int | None = DEFAULT_KEEP_SUCCEEDED
    #: most jobs of one partition running (or reserved) at once across every worker, or an
    #: Adaptive limit (None: no cap)
    partition_max_running: int | Adaptive | None = None
    #: at most N starts of one partition per window across every worker (None: no limit)
    partition_rate_limit: str | None = None
    #: partitions take turns: a backlog in one never holds another's jobs back
    fair: bool = False
    #: the newest N succeeded records (of those keep_succeeded keeps) that keep their message
    keep_args: int = DEFAULT_KEEP_ARGS

    def __post_init__(self) -> None:
        if self.max_ready is not None and (not isinstance(self.max_ready, int) or isinstance(self.max_ready, bool)
                                           or self.max_ready < 1):
            raise ConfigError(f"queue {self.name!r}: max_ready must be an int >= 1 or None, got {self.max_ready!r}")
        if self.on_full not in ("raise", "block"):
            raise ConfigError(f"queue {self.name!r}: on_full must be 'raise' or 'block', got {self.on_full!r}")
        if not isinstance(self.block_timeout, (int, float)) or self.block_timeout < 0:
            raise ConfigError(f"queue {self.name!r}: block_timeout must be >= 0 seconds, got {self.block_timeout!r}")
        if self.rate_limit is not None:
            parse_rate(self.rate_limit, f"queue {self.name!r}")
        if self.max_running is not None and (not isinstance(self.max_running, int)
                                             or isinstance(self.max_running, bool) or self.max_running < 1):
            raise ConfigError(f"queue {self.name!r}: max_running must be an int >= 1 or None, "
                              f"got {self.max_running!r}")

        if not isinstance(self.events, int) or self.events < 0:
            raise ConfigError(f"queue {self.name!r}: events must be True, False or an int >= 0 (entries kept), "
                              f"got {self.events!r}")
        kept = self.keep_succeeded
        if kept is not None and (not isinstance(kept, int) or isinstance(kept, bool) or kept < 0):
            raise ConfigError(f"queue {self.name!r}: keep_succeeded must be an int >= 0 or None, got {kept!r}")
        args = self.keep_args
        if not isinstance(args, int) or isinstance(args, bool) or args < 0:
            raise ConfigError(f"queue {self.name!r}: keep_args must be an int >= 0, got {args!r}")
        cap = self.partition_max_running
        if cap is not None and not isinstance(cap, Adaptive) and (not isinstance(cap, int) or isinstance(cap, bool)
                                                                  or cap < 1):
            raise ConfigError(f"queue {self.name!r}: partition_max_running must be an int >= 1, a taskq.Adaptive "
                              f"or None, got {cap!r}")
        if self.partition_rate_limit is not None:
            parse_rate(self.partition_rate_limit, f"queue {self.name!r}: partition")
        if not isinstance(self.fair, bool):
            raise ConfigError(f"queue {self.name!r}: fair must be True or False, got {self.fair!r}")

    @property
    def rate(self) -> tuple[int, int] | None:
        """The rate limit as (jobs, window ms), or None."""
        return None if self.rate_limit is None else parse_rate(self.rate_limit, self.name)

    @property
    def partition_limits(self) -> PartitionLimits | None:
        """What every partition of the queue may do (unless it has its own limits), or None."""
        cap, rate = self.partition_max_running, self.partition_rate_limit
        if cap is None and rate is None:
            return None
        return PartitionLimits(cap if isinstance(cap, int) else 0,
                               None if rate is None else parse_rate(rate, self.name),
                               (cap.start, cap.max) if isinstance(cap, Adaptive) else None)

    def describe(self) -> str:
        """One line for `taskq status`."""
        parts = []
        if self.max_ready is not None:
            wait = f", waits up to {self.block_timeout:g}s" if self.on_full == "block" else ""
            parts.append(f"max_ready={self.max_ready} ({self.on_full}{wait})")
        if self.rate_limit is not None:
            parts.append(f"rate_limit={self.rate_limit}")
        if self.max_running is not None:
            parts.append(f"max_running={self.max_running}")
        cap = self.partition_max_running
        if cap is not None:
            parts.append(f"partition_max_running={cap if isinstance(cap, int) else f'adaptive {cap.start}-{cap.max}'}")
        if self.partition_rate_limit is not None:
            parts.append(f"partition_rate_limit={self.partition_rate_limit}")
        if self.fair:
            parts.append("fair")
        return ", ".join(parts) or "no limits"


def with_room(policy: QueuePolicy | None, broker: RoomWaiter, store: Callable[[int], T]) -> T:
    """store(max_ready) (0: no limit); a full queue with on_full="block" is waited on, without
    polling, until a fetch makes room or block_timeout passes (then QueueFull is raised)."""
    if policy is None or policy.max_ready is None:
        return store(0)
    deadline = time.monotonic() + policy.block_timeout
    while True:
        try:
            return store(policy.max_ready)
        except QueueFull as exc:
            broker.wait_room(policy.name, _room_wait(policy, exc, deadline))


async def with_room_async(policy: QueuePolicy | None, broker: AsyncRoomWaiter,
                          store: Callable[[int], Awaitable[T]]) -> T:
    """with_room() for code on an event loop."""
    if policy is None or policy.max_ready is None:
        return await store(0)
    deadline = time.monotonic() + policy.block_timeout
    while True:
        try:
            return await store(policy.max_ready)
        except QueueFull as exc:
            await broker.wait_room(policy.name, _room_wait(policy, exc, deadline))


def _room_wait(policy: QueuePolicy, exc: QueueFull, deadline: float) -> float:
    """Seconds to wait for room after a refusal, or the QueueFull to raise now."""
    left = deadline - time.monotonic()
    if policy.on_full != "block" or left <= 0:
        if policy.on_full == "block":
            raise QueueFull(f"{exc} (waited {policy.block_timeout:g}s for room)") from None
        raise exc
    return left

