"""WorkerOptions: every `taskq worker` option, once. The click command and the argv of the
processes a supervisor starts are both derived from it, so no option is forgotten in either."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from taskq.app import TaskQ
from taskq.errors import ConfigError
from taskq.options import check_queue
from taskq.worker import Worker

if TYPE_CHECKING:
    from taskq.metrics import JobMetrics

F = TypeVar("F", bound=Callable[..., Any])


def _opt(*flags: str, default: Any = None, child: bool = True, **click_kwargs: Any) -> Any:
    """A field that is also a click option; `child`: passed on to a supervisor's processes."""
    return dataclasses.field(default=default, metadata={"flags": flags, "child": child, "click": click_kwargs})


def _queue_names(ctx: click.Context, param: click.Parameter, names: tuple[str, ...]) -> tuple[str, ...]:
    """-q names checked as @app.task(queue=) checks them (they become part of Redis keys)."""
    for name in names:
        try:
            check_queue(name)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), ctx, param) from None
    return names


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerOptions:
    queues: tuple[str, ...] = _opt("-q", "--queue", default=(), multiple=True, callback=_queue_names,
                                   help="Queue to consume (repeatable); default all of the app's.")
    concurrency: int = _opt("-c", "--concurrency", default=8, show_default=True, type=click.IntRange(min=1),
                            help="Jobs run at once in each process.")
    processes: int = _opt("-p", "--processes", default=0, child=False, show_default=True,
                          type=click.IntRange(min=0),
                          help="Worker processes under a supervisor that replaces any that dies; "
                               "0 = run in this process.")
    max_jobs_per_child: int | None = _opt("--max-jobs-per-child", type=click.IntRange(min=1),
                                          help="With -p: replace a worker process after this many jobs.")
    max_memory_per_child: float | None = _opt(
        "--max-memory-per-child", type=click.FloatRange(min=1), metavar="MB",
        help="With -p: replace a worker process once its resident memory exceeds MB MiB.")
    prefetch: int | None = _opt("--prefetch", type=click.IntRange(min=0),
                                help="Jobs reserved ahead of free slots, per process (default 0); a reserved "
                                     "job starts after Redis confirms it was not cancelled.")
    grace: float = _opt("--grace", default=30.0, show_default=True, type=click.FloatRange(min=0),
                        help="Seconds running jobs get to finish on SIGTERM before being given back.")
    burst: bool = _opt("--burst", default=False, child=False, is_flag=True, help="Exit once the queues are empty.")
    log_level: str = _opt("--log-level", default="info", show_default=True,
                          type=click.Choice(["debug", "info", "warning", "error"]))
    log_format: str = _opt("--log-format", default="console", show_default=True,
                           type=click.Choice(["console", "json"]))
    log_tracebacks: bool = _opt("--log-tracebacks/--no-log-tracebacks", default=True, show_default=True,
                                help="Log a failed attempt's traceback (JSON keeps it whole in `exception`).")
    metrics_port: int | None = _opt("--metrics-port", child=False, type=click.IntRange(min=0, max=65535),
                                    help="Serve Prometheus metrics on this port (0 = any free port).")
    metrics_host: str = _opt("--metrics-host", default="127.0.0.1", child=False, show_default=True,
                             help="Address the metrics endpoint binds (0.0.0.0 for every interface).")
    #: set by a supervisor for the processes it starts
    parent_pid: int | None = _opt("--parent-pid", child=False, type=int, hidden=True)
    worker_id: str | None = _opt("--worker-id", child=False, hidden=True)

    @classmethod
    def click_options(cls, command: F) -> F:
        """Decorate a click command with one option per field (its parameter is the field's name)."""
        return cls.shared(*(f.name for f in dataclasses.fields(cls)))(command)

    @classmethod
    def shared(cls, *names: str) -> Callable[[F], F]:
        """The click options of some fields, for another command that takes them too (beat)."""
        chosen = [f for f in dataclasses.fields(cls) if f.name in names]

        def decorate(command: F) -> F:
            for field in reversed(chosen):
                meta = field.metadata
                command = click.option(*meta["flags"], field.name, default=field.default, **meta["click"])(command)
            return command

        return decorate

    @property
    def child(self) -> bool:
        """Whether this process was started by a supervisor."""
        return self.parent_pid is not None

    def child_argv(self, app_path: str, parent_pid: int, worker_id: str) -> list[str]:
        """The command line of one supervised worker process with these options."""
        argv = [sys.executable, "-m", "taskq", "worker", app_path]
        for field in dataclasses.fields(self):
            meta, value = field.metadata, getattr(self, field.name)
            if not meta["child"] or value == field.default:
                continue
            flag = meta["flags"][-1]
            if meta["click"].get("multiple"):
                for item in value:
                    argv += [flag, str(item)]
            elif meta["click"].get("is_flag"):
                argv.append(flag)
            elif "/" in flag:  # an on/off switch: the half that says the value
                argv.append(flag.split("/")[0 if value else 1])
            else:
                argv += [flag, str(value)]
        return [*argv, "--parent-pid", str(parent_pid), "--worker-id", worker_id]

    def worker(self, app: TaskQ, metrics: JobMetrics | None = None) -> Worker:
        """The Worker these options describe (one process)."""
        return Worker(app, self.queues or None, concurrency=self.concurrency, grace=self.grace, burst=self.burst,
                      max_jobs=self.max_jobs_per_child, max_memory_mb=self.max_memory_per_child,
                      kill_on_timeout=self.child, parent_pid=self.parent_pid, worker_id=self.worker_id,
                      prefetch=self.prefetch, metrics=metrics, log_tracebacks=self.log_tracebacks)
