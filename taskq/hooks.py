"""Hooks and middleware: the app's user code around jobs.

`@app.on("succeeded")` hooks receive a JobEvent in the process where the event happens (the
producer for "enqueued", the worker for the rest). They run on one background thread per
process, in the order the events happened, so a slow hook never slows a job and a failing one
never fails it (its first exception is logged, with the hook's name).

`@app.middleware` wraps every attempt: `mw(job, call_next)` gets the job's JobContext and
returns what `call_next()` returns (or raises), in registration order (the first registered is
outermost). For an async task, `call_next()` returns an awaitable: an `async def` middleware
awaits it (and so sees the outcome); a plain one may return it as it is.
"""

from __future__ import annotations

import atexit
import inspect
import queue as queue_mod
import threading
from collections.abc import Callable
from typing import TypeVar

from taskq.errors import ConfigError
from taskq.events import Emitter, EventKind, JobEvent
from taskq.execute import Middleware

Hook = Callable[[JobEvent], None]
H = TypeVar("H", bound=Hook)
M = TypeVar("M", bound=Middleware)
#: the event kinds a hook may be registered for (LOST is the worker's own business)
HOOK_KINDS = ("enqueued", "started", "succeeded", "retrying", "dead", "cancelled")
#: seconds a stopping process waits for its queued hook calls
FLUSH_TIMEOUT = 5.0


class Hooks:
    """One app's hooks by event kind, its middleware, and the thread that runs the hooks."""

    def __init__(self) -> None:
        #: the hooks, as listeners (a failing one is logged once and never fails the job)
        self.emitter = Emitter()
        self.middleware: list[Middleware] = []
        #: called as each call becomes a message: (task name, queue) -> trace headers to carry
        #: in it, or None (taskq.otel starts the producer span here)
        self.trace: Callable[[str, str], dict[str, str] | None] | None = None
        self._queue: queue_mod.SimpleQueue[JobEvent | None] = queue_mod.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: notified when the last queued event has been through its hooks
        self._drained = threading.Condition(self._lock)
        self._pending = 0

    # -- registering --------------------------------------------------------

    def on(self, kind: str) -> Callable[[H], H]:
        if kind not in HOOK_KINDS:
            raise ConfigError(f"app.on(): unknown event {kind!r}; use one of {', '.join(HOOK_KINDS)}")

        def register(fn: H) -> H:
            if not callable(fn):
                raise ConfigError(f"app.on({kind!r}) needs a function, got {fn!r}")
            self.emitter.add(fn, (EventKind(kind),))
            return fn

        return register

    def add_middleware(self, fn: M) -> M:
        if not callable(fn) or len(inspect.signature(fn).parameters) != 2:
            raise ConfigError(f"@app.middleware needs a function (job, call_next), got {fn!r}")
        self.middleware.append(fn)
        return fn

    # -- events -----------------------------------------------------------

    @property
    def kinds(self) -> tuple[EventKind, ...]:
        """The kinds some hook is registered for."""
        return tuple(kind for kind in EventKind if self.emitter.wants(kind))

    def wants(self, kind: EventKind) -> bool:
        return self.emitter.wants(kind)

    def dispatch(self, event: JobEvent) -> None:
        """Queue an event for its hooks (returns at once; the hook thread calls them)."""
        if not self.emitter.wants(event.kind):
            return
        with self._lock:
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="taskq-hooks", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        self._queue.put(event)

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> bool:
        """Wait (up to `timeout`) until every queued event has been through its hooks."""
        with self._drained:
            return self._drained.wait_for(lambda: not self._pending, timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self.emitter.emit(event)
            with self._lock:
                self._pending -= 1
                if not self._pending:
                    self._drained.notify_all()
