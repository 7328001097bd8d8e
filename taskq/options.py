"""A task's options (TaskOptions, fixed at decoration) and the checks of options given per call:
validated once, where they are given, so a bad value fails at import or at `.options()`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from taskq.backoff import Backoff
from taskq.errors import ConfigError
from taskq.limits import parse_rate
from taskq.message import MAX_PRIORITY

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["DEFAULT_RETRIES", "MAX_PARTITION", "UNSET", "TaskOptions", "Unset", "check_expires", "check_partition",
           "check_priority", "check_queue", "check_seconds", "named_options", "unix_ms"]

#: default number of retries after the first attempt fails
DEFAULT_RETRIES = 3


class Unset:
    """The type of UNSET: an option not given (for options where None means something)."""


UNSET = Unset()


@dataclasses.dataclass(frozen=True, slots=True)
class TaskOptions:
    """Options fixed at decoration; validated once, at import time."""

    queue: str = "default"
    retries: int = DEFAULT_RETRIES
    backoff: Backoff = dataclasses.field(default_factory=Backoff)
    #: seconds a run may take, or None
    timeout: float | None = None
    priority: int = 0
    #: retry only failures of these types (None: any); taskq.Retry always retries
    retry_on: tuple[type[BaseException], ...] | None = None
    #: never retry failures of these types: dead-lettered at once
    dont_retry_on: tuple[type[BaseException], ...] = ()
    #: at most N starts of this task per sliding window across every worker: "N/s", "N/m", "N/h"
    rate_limit: str | None = None
    #: at most N jobs of this task running (or prefetched) at once across every worker
    max_running: int | None = None
    #: a job not started within this many seconds of its due time (or by this datetime) never
    #: starts: it ends cancelled, reason "expired: ..."
    expires: float | dt.timedelta | dt.datetime | None = None
    #: a job whose worker died while running it is dead-lettered ("lost: at_most_once"), not run
    #: again; failures (exceptions) still retry per `retries`
    at_most_once: bool = False
    #: its jobs keep what they log (current_job().log(), stdlib records at INFO and above)
    keep_logs: bool = True

    def __post_init__(self) -> None:
        check_queue(self.queue)
        if not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigError(f"retries must be an int >= 0, got {self.retries!r}")
        if not isinstance(self.backoff, Backoff):
            raise ConfigError(f"backoff must be a taskq.Backoff, got {self.backoff!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds or None, got {self.timeout!r}")
        check_priority(self.priority)
        for name in ("retry_on", "dont_retry_on"):
            types = getattr(self, name)
            if types is not None and (not isinstance(types, tuple) or not all(
                    isinstance(t, type) and issubclass(t, BaseException) for t in types)):
                raise ConfigError(f"{name} must be a tuple of exception classes, got {types!r}")
        if self.rate_limit is not None:
            parse_rate(self.rate_limit, "task")
        if self.max_running is not None and (not isinstance(self.max_running, int)
                                             or isinstance(self.max_running, bool) or self.max_running < 1):
            raise ConfigError(f"max_running must be an int >= 1 or None, got {self.max_running!r}")
        check_expires(self.expires)
        if not isinstance(self.at_most_once, bool):
            raise ConfigError(f"at_most_once must be True or False, got {self.at_most_once!r}")
        if not isinstance(self.keep_logs, bool):
            raise ConfigError(f"keep_logs must be True or False, got {self.keep_logs!r}")

    @property
    def limited(self) -> bool:
        """Whether the task has limits of its own (its jobs then carry its name as their gate)."""
        return self.rate_limit is not None or self.max_running is not None

    def retries_on(self, exc: BaseException) -> bool:
        """Whether a failure of this type may be retried (attempts left permitting)."""
        if isinstance(exc, self.dont_retry_on):
            return False
        return self.retry_on is None or isinstance(exc, self.retry_on)


def check_queue(queue: object) -> None:
    """Queue names become part of Redis keys: plain, non-empty, no braces."""
    if not isinstance(queue, str) or not queue or any(c in queue for c in "{}: \t\n"):
        raise ConfigError(f"queue name must be a non-empty string without braces, colons or spaces, got {queue!r}")


def check_expires(expires: object) -> None:
    """expires= is seconds > 0, a positive timedelta, a datetime, or None."""
    if expires is None or isinstance(expires, dt.datetime):
        return
    seconds = expires.total_seconds() if isinstance(expires, dt.timedelta) else expires
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        raise ConfigError(f"expires must be seconds > 0, a timedelta or a datetime, got {expires!r}")


def check_seconds(name: str, value: object) -> float:
    """A span given as seconds > 0 or a positive timedelta (key_ttl=, debounce=, debounce_max=), in seconds."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds > 0:
        raise ConfigError(f"{name} must be seconds > 0 or a timedelta, got {value!r}")
    return float(seconds)


#: longest partition name (it is part of Redis key names)
MAX_PARTITION = 200


def check_partition(partition: object) -> None:
    """A partition names a tenant or destination inside a queue: a non-empty string without NUL
    bytes, at most MAX_PARTITION characters (it becomes part of Redis key names)."""
    if (not isinstance(partition, str) or not partition or "\0" in partition
            or len(partition) > MAX_PARTITION):
        raise ConfigError(f"partition must be a non-empty string of at most {MAX_PARTITION} characters without "
                          f"NUL bytes, got {partition!r}")


def unix_ms(at: dt.datetime | None) -> int:
    """A datetime as unix ms (0 = none); a naive datetime is local time."""
    if at is None:
        return 0
    stamp = at if at.tzinfo is not None else at.astimezone()
    return max(1, int(stamp.timestamp() * 1000))


def check_priority(priority: object) -> None:
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= MAX_PRIORITY:
        raise ConfigError(f"priority must be an int from 0 to {MAX_PRIORITY}, got {priority!r}")


def named_options(where: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator: the function refuses an option it does not take with a one-line ConfigError
    that names it and the nearest it has ("task.options(): unknown option 'partiton' (did you
    mean 'partition'?)"), not Python's TypeError. Checked before the call: one set comparison."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        names = frozenset(inspect.signature(fn).parameters)

        @functools.wraps(fn)
        def call(*args: P.args, **kwargs: P.kwargs) -> R:
            if kwargs and not names.issuperset(kwargs):
                unknown = sorted(set(kwargs) - names)[0]
                near = difflib.get_close_matches(unknown, sorted(names - {"self"}), 1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise ConfigError(f"{where}(): unknown option {unknown!r}{hint}")
            return fn(*args, **kwargs)

        return call

    return decorate
