"""Task[P, R]: a registered function and the calls that enqueue it (its options: taskq/options.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from taskq.backoff import Backoff
from taskq.broker.base import FlowStep, Placement
from taskq.codec import blame
from taskq.errors import ConfigError, EnqueueError, SerializationError
from taskq.job import Job
from taskq.message import MAX_MESSAGE_BYTES, encode, unsendable
from taskq.models import CallTypes, call_types
from taskq.options import (
    UNSET,
    TaskOptions,
    Unset,
    check_expires,
    check_partition,
    check_priority,
    check_queue,
    check_seconds,
    named_options,
    unix_ms,
)

P = ParamSpec("P")
R = TypeVar("R")

class Producer(Protocol):
    """What a task needs from its app to enqueue (implemented by TaskQ)."""

    def submit(self, call: TaskCall[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Job[Any]:
        """Validate, pack and enqueue one call."""
        ...

    def submit_many(self, call: TaskCall[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                    partition_of: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[Any]]:
        """Validate, pack and enqueue many calls in batches (each job's partition from its arguments)."""
        ...

    async def submit_async(self, call: TaskCall[Any, Any], args: tuple[Any, ...],
                           kwargs: dict[str, Any]) -> Job[Any]:
        """submit() on the running event loop."""
        ...

    async def submit_many_async(self, call: TaskCall[Any, Any], calls: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                                partition_of: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[Any]]:
        """submit_many() on the running event loop."""
        ...

    def submit_flow(self, step: Signature[Any]) -> list[Job[Any]]:
        """Store a one-step workflow (taskq/workflow.py composes more)."""
        ...

    max_message_bytes: int

    def new_flow_id(self) -> str:
        """A new workflow's id (its steps' job ids are `<id>-<n>`)."""
        ...

    def submit_steps(self, steps: Sequence[tuple[str, FlowStep]], tasks: Sequence[TaskBase[Any, Any]]) -> None:
        """Store a workflow's (queue, step)s, the waiting ones first (taskq/workflow.py)."""
        ...

    def job_handle(self, queue: str, job_id: str, task: TaskBase[Any, Any] | None = None) -> Job[Any]:
        """A Job for an id in a queue (of `task`: it rebuilds a model result)."""
        ...


class TaskBase(Generic[P, R]):
    """What sync and async tasks share: name, options, enqueueing."""

    def __init__(self, producer: Producer, fn: Callable[..., Any], name: str, options: TaskOptions) -> None:
        self.fn = fn
        self.name = name
        self.opts = options
        self.is_async = inspect.iscoroutinefunction(fn)
        self.producer = producer
        #: what its jobs carry for the task's own limits to apply (its name), or None: no limits
        self.gate = name if options.limited else None
        self._signature = inspect.signature(fn)
        self._positional = _positional_range(self._signature)
        self._defaults: TaskCall[P, R] = TaskCall(self, options.queue, options.priority, 0.0, None, None, options,
                                                  expires=options.expires)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} queue={self.opts.queue!r}>"

    @functools.cached_property
    def types(self) -> CallTypes | None:
        """Its parameters and return value that are pydantic models or dataclasses (None: none
        are), read from its type hints at first use, so a model may be defined after the task."""
        return call_types(self.fn, self._signature)

    @property
    def defaults(self) -> TaskCall[P, R]:
        """A call with the task's own options."""
        return self._defaults

    def message(self, job_id: str, args: tuple[Any, ...], kwargs: dict[str, Any], *, queue: str, priority: int,
                enqueued_at: float, key: str | None = None, limit: int = MAX_MESSAGE_BYTES,
                opts: TaskOptions | None = None, trace: dict[str, str] | None = None,
                flow: tuple[str, str, int, bool] | None = None) -> bytes:
        """The wire bytes of one call of this task (with per-call `opts`, else the task's): the
        one place a call becomes a message. Raises SerializationError or MessageTooLarge first."""
        types = self.types
        if types is not None:  # models and dataclasses as plain maps (taskq/models.py)
            args, kwargs = types.dump_call(self.name, args, kwargs, 1 if flow is not None and flow[1] else 0)
        o = opts or self.opts
        b = o.backoff
        backoff = None if o is self.opts or b == self.opts.backoff else (b.base, b.factor, b.max, b.jitter)
        try:
            return encode(id=job_id, task=self.name, queue=queue, args=args, kwargs=kwargs, attempt=1,
                          max_attempts=o.retries + 1, enqueued_at=enqueued_at, priority=priority,
                          timeout=o.timeout, key=key, backoff=backoff, limit=limit, trace=trace, flow=flow)
        except SerializationError:
            # only on failure: name a positional argument by its parameter, not its position
            detail = blame(args, kwargs, _positional_names(self._signature))
            if detail is None:
                raise
            raise unsendable(self.name, detail) from None

    def check_args(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Raise EnqueueError if the arguments do not fit the function's signature."""
        if not kwargs and self._positional is not None:  # the common case, without bind()
            low, high = self._positional
            if low <= len(args) <= high:
                return
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise EnqueueError(f"task {self.name!r}: {_misfit(self._signature, args, kwargs, exc)}") from None

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Enqueue a call with the task's default options."""
        return self._defaults.delay(*args, **kwargs)

    def map(self, items: Iterable[Any], *, partition: Callable[[Any], str] | None = None) -> list[Job[R]]:
        """Enqueue one job per item, called with the item as its one argument, in batches (each
        in the partition `partition(item)` gives, if given)."""
        return self._defaults.map(items, partition=partition)

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """This call as a workflow step (taskq.chain, group, chord); in a flow the parents'
        results come before `args`."""
        return self._defaults.s(*args, **kwargs)

    def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, Job[R]]:
        """delay() for code on an event loop: never blocks it; concurrent calls share round trips.
        (A plain function returning the one coroutine: a layer of coroutines per call is a cost.)"""
        return self._defaults.delay_async(*args, **kwargs)

    async def map_async(self, items: Iterable[Any], *,
                        partition: Callable[[Any], str] | None = None) -> list[Job[R]]:
        """map() for code on an event loop."""
        return await self._defaults.map_async(items, partition=partition)

    def starmap(self, items: Iterable[Iterable[Any]], *,
                partition: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[R]]:
        """Enqueue one job per item, called with the item's elements as arguments, in batches."""
        return self._defaults.starmap(items, partition=partition)

    @named_options("task.options")
    def options(
        self, *, delay: float | dt.timedelta = 0, at: dt.datetime | None = None,
        queue: str | None = None, priority: int | None = None, key: str | None = None,
        retries: int | None = None, timeout: float | Unset | None = UNSET, backoff: Backoff | None = None,
        ordering_key: str | None = None, expires: float | dt.timedelta | dt.datetime | Unset | None = UNSET,
        partition: str | None = None, key_ttl: float | dt.timedelta | None = None,
        debounce: float | dt.timedelta | None = None, debounce_max: float | dt.timedelta | None = None,
    ) -> TaskCall[P, R]:
        """Options for one call: delay (seconds or timedelta) or at (datetime), queue,
        priority (0-9, higher first), key (deduplicates while a job with it is live), the
        task's retries, timeout (None: no limit) and backoff for this call only,
        ordering_key: jobs of one queue with the same ordering key run one at a time, in the
        order they entered the queue (a delayed job enters when it falls due), and expires
        (seconds or timedelta after the due time, or a datetime; None: no deadline): a job not
        started by then never starts, it ends cancelled with the reason "expired: ...", and
        partition: the tenant or destination whose limits and turns the job takes
        (app.queue(partition_max_running=, partition_rate_limit=, fair=), app.partition()).
        With key: key_ttl (seconds or timedelta) holds the key that long after its job ended, so
        calls meanwhile get that job (a throttle); debounce (seconds or timedelta) makes the job
        due that long after the newest call with the key: while the key's job has not started, a
        call moves it (never past debounce_max after the first call) and gives it its
        arguments, and returns that job; once it started, a call makes a new job."""
        seconds = delay.total_seconds() if isinstance(delay, dt.timedelta) else delay
        if not isinstance(seconds, (int, float)) or seconds < 0:
            raise ConfigError(f"delay must be >= 0 seconds, got {delay!r}")
        if at is not None and not isinstance(at, dt.datetime):
            raise ConfigError(f"at must be a datetime, got {at!r}")
        if seconds and at is not None:
            raise ConfigError("give delay= or at=, not both")
        if queue is not None:
            check_queue(queue)
        if priority is not None:
            check_priority(priority)
        if key is not None and (not isinstance(key, str) or not key):
            raise ConfigError(f"key must be a non-empty string, got {key!r}")
        if ordering_key is not None and (not isinstance(ordering_key, str) or not ordering_key
                                         or "\0" in ordering_key):
            raise ConfigError(f"ordering_key must be a non-empty string without NUL bytes, got {ordering_key!r}")
        if not isinstance(expires, Unset):
            check_expires(expires)
        if partition is not None:
            check_partition(partition)
        windows = _check_windows(key, key_ttl, debounce, debounce_max, bool(seconds) or at is not None)
        opts = self.opts
        if retries is not None or not isinstance(timeout, Unset) or backoff is not None:
            opts = dataclasses.replace(  # validated as at decoration
                opts, retries=opts.retries if retries is None else retries,
                timeout=opts.timeout if isinstance(timeout, Unset) else timeout, backoff=backoff or opts.backoff)
        return TaskCall(
            self, queue or self.opts.queue,
            self.opts.priority if priority is None else priority, float(seconds), at, key, opts, ordering_key,
            self.opts.expires if isinstance(expires, Unset) else expires, partition, *windows,
        )


def _check_windows(key: str | None, key_ttl: object, debounce: object, debounce_max: object,
                   delayed: bool) -> tuple[float | None, float | None, float | None]:
    """key_ttl=, debounce= and debounce_max= in seconds (None: not given), checked: each needs
    key= (debounce_max needs debounce=, and is at least it), and debounce sets the due time."""
    ttl = None if key_ttl is None else check_seconds("key_ttl", key_ttl)
    wait = None if debounce is None else check_seconds("debounce", debounce)
    most = None if debounce_max is None else check_seconds("debounce_max", debounce_max)
    if key is None and (ttl is not None or wait is not None):
        raise ConfigError(f"{'key_ttl' if ttl is not None else 'debounce'}= needs key= (the key it holds or debounces)")
    if most is not None and (wait is None or most < wait):
        raise ConfigError(f"debounce_max must come with debounce= and be >= it, got debounce_max={debounce_max!r}, "
                          f"debounce={debounce!r}")
    if wait is not None and delayed:
        raise ConfigError("give debounce= or delay=/at=, not both (debounce sets the due time)")
    return ttl, wait, most


def _positional_names(signature: inspect.Signature) -> list[str]:
    """The names of the parameters a positional argument may fill, in order (not *args')."""
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in signature.parameters.values() if p.kind in kinds]


def _misfit(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any], exc: TypeError) -> str:
    """Every way a call does not fit, in one line: bind() names only the first, so keyword
    arguments the function does not take are named besides what else is wrong."""
    params = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return str(exc)
    unexpected = [name for name in kwargs if name not in params]
    if not unexpected:
        return str(exc)
    problems = []
    try:
        signature.bind(*args, **{k: v for k, v in kwargs.items() if k in params})
    except TypeError as rest:
        problems.append(str(rest))
    many = len(unexpected) > 1
    problems.append(f"got {'unexpected keyword arguments' if many else 'an unexpected keyword argument'} "
                    + ", ".join(map(repr, unexpected)))
    return "; ".join(problems)


def _positional_range(signature: inspect.Signature) -> tuple[int, float] | None:
    """(fewest, most) positional arguments a call without keywords may pass, or None when
    such a call could still be wrong in ways only bind() sees (a required keyword-only one)."""
    low, high = 0, 0.0
    for param in signature.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            high += 1
            if param.default is param.empty:
                low += 1
        elif param.kind is param.VAR_POSITIONAL:
            high = float("inf")
        elif param.kind is param.KEYWORD_ONLY and param.default is param.empty:
            return None
    return low, high


class Task(TaskBase[P, R]):
    """A sync task. Calling it runs the function inline, with no queue."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return cast(R, self.fn(*args, **kwargs))


class AsyncTask(TaskBase[P, R]):
    """An `async def` task. Calling it returns the coroutine, run inline when awaited."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        return cast(Coroutine[Any, Any, R], self.fn(*args, **kwargs))


@dataclasses.dataclass(frozen=True, slots=True)
class TaskCall(Generic[P, R]):
    """A task plus per-call options; `.delay()` enqueues."""

    task: TaskBase[P, R]
    queue: str
    priority: int
    delay_seconds: float
    at: dt.datetime | None
    key: str | None
    #: the task's options for this call (retries, timeout, backoff may be overridden)
    opts: TaskOptions
    #: jobs with the same ordering key (in one queue) run one at a time, in enqueue order
    ordering_key: str | None = None
    #: not started within these seconds (or timedelta) of its due time, or by this datetime: never runs
    expires: float | dt.timedelta | dt.datetime | None = None
    #: the tenant or destination whose partition limits and turns the job takes
    partition: str | None = None
    #: seconds the key stays held after its job ended (None: released as it ends)
    key_ttl: float | None = None
    #: seconds after the newest call with the key that the key's job is due (None: no debounce)
    debounce: float | None = None
    #: and at most these seconds after the key's job was created (None: no cap)
    debounce_max: float | None = None
    #: where and when the call's jobs wait (the broker's view of the options above)
    place: Placement = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        e = self.expires
        expires_ms = 0 if e is None or isinstance(e, dt.datetime) else int(
            (e.total_seconds() if isinstance(e, dt.timedelta) else e) * 1000) or 1
        object.__setattr__(self, "place", Placement(  # frozen: set once, here
            self.queue, int(self.delay_seconds * 1000), unix_ms(self.at), self.ordering_key, self.task.gate,
            self.task.name, expires_ms, unix_ms(e) if isinstance(e, dt.datetime) else 0, self.partition,
            _ms(self.key_ttl), _ms(self.debounce), _ms(self.debounce_max), self.opts.at_most_once))

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> Job[R]:
        """Enqueue the call; returns the job (or the live job already holding `key`)."""
        return cast(Job[R], self.task.producer.submit(self, args, kwargs))

    def s(self, *args: Any, **kwargs: Any) -> Signature[R]:
        """This call, with these options, as a workflow step (taskq.chain, group, chord)."""
        return Signature(self, args, dict(kwargs))

    def delay_async(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, Job[R]]:
        """delay() for code on an event loop: the same checks and errors, without blocking it."""
        return cast(Coroutine[Any, Any, Job[R]], self.task.producer.submit_async(self, args, kwargs))

    def map(self, items: Iterable[Any], *, partition: Callable[[Any], str] | None = None) -> list[Job[R]]:
        """Enqueue `task(item)` for each item, in pipelined batches; nothing is written if any
        item is bad. (A key only with debounce=: the items then debounce into one job.) With
        `partition`, each job goes to the partition partition(item) names."""
        return self.starmap(((item,) for item in items), partition=_first(partition))

    async def map_async(self, items: Iterable[Any], *,
                        partition: Callable[[Any], str] | None = None) -> list[Job[R]]:
        """map() for code on an event loop."""
        return await self.starmap_async(((item,) for item in items), partition=_first(partition))

    async def starmap_async(self, items: Iterable[Iterable[Any]], *,
                            partition: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[R]]:
        """starmap() for code on an event loop."""
        if self.key is not None and self.debounce is None:
            raise ConfigError("map/starmap cannot take key= without debounce=: every job would share it")
        jobs = await self.task.producer.submit_many_async(self, ((tuple(item), {}) for item in items), partition)
        return cast(list[Job[R]], jobs)

    def starmap(self, items: Iterable[Iterable[Any]], *,
                partition: Callable[[tuple[Any, ...]], str] | None = None) -> list[Job[R]]:
        """Enqueue `task(*item)` for each item, in pipelined batches; nothing is written if any
        item is bad. With an ordering key, the jobs run one at a time in the items' order. With
        `partition`, each job goes to the partition partition(item as a tuple) names. With key=
        and debounce=, the items are calls with that key in turn: one job, with the last item."""
        if self.key is not None and self.debounce is None:
            raise ConfigError("map/starmap cannot take key= without debounce=: every job would share it")
        jobs = self.task.producer.submit_many(self, ((tuple(item), {}) for item in items), partition)
        return cast(list[Job[R]], jobs)


def _ms(seconds: float | None) -> int:
    """Seconds as whole ms for the broker (0: none; a positive span is at least 1 ms)."""
    return 0 if seconds is None else int(seconds * 1000) or 1


def _first(partition: Callable[[Any], str] | None) -> Callable[[tuple[Any, ...]], str] | None:
    """map()'s partition function, for starmap's one-element argument tuples."""
    return None if partition is None else (lambda args: partition(args[0]))


class Signature(Generic[R]):
    """One call of a task, not sent yet: `task.s(*args, **kwargs)` or `task.options(...).s(...)`.
    In a flow, the results of the step's parents come before `args`."""

    def __init__(self, call: TaskCall[Any, R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if call.delay_seconds or call.at is not None or call.key is not None or call.ordering_key is not None:
            raise ConfigError(f"task {call.task.name!r}: a workflow step cannot take delay=, at=, key= or "
                              "ordering_key= (it starts when its parents end)")
        self.call = call
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f"{self.call.task.name}.s(*{self.args!r}, **{self.kwargs!r})"

    def delay(self) -> Job[R]:
        """Enqueue this one call (a flow of one step); taskq.chain, group and chord compose these
        (taskq/workflow.py)."""
        return cast(Job[R], self.call.task.producer.submit_flow(self)[0])
