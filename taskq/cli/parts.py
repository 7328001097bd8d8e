"""Parts of the `taskq` command that are not commands: taskq errors as one-line click errors,
APP taken from $TASKQ_APP, the signal handling of the long-running commands, the supervisor of
`-p`, the metrics endpoint, JSON options, the dashboard's port check."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import click

from taskq.app import TaskQ
from taskq.cli.options import WorkerOptions
from taskq.errors import ConfigError, TaskqError
from taskq.worker.supervisor import Supervisor

if TYPE_CHECKING:
    from taskq.worker import Worker


def names_an_app(token: str) -> bool:
    """Whether a command's first argument is an APP (`package.module:app`, or an importable
    `package.module`) rather than what follows it (a job id, a queue, a subcommand)."""
    if ":" in token:
        return True
    if not all(part.isidentifier() for part in token.split(".")):
        return False
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as load_app() imports it
    try:
        return importlib.util.find_spec(token.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def run(call: Callable[[], Any]) -> Any:
    """call(), with a taskq error as click's one-line error (exit code 1)."""
    with one_line():
        return call()


@contextlib.contextmanager
def one_line() -> Iterator[None]:
    """A taskq error inside the block becomes click's one-line error and exit code 1."""
    try:
        yield
    except TaskqError as exc:
        raise click.ClickException(str(exc)) from None


class _AppFromEnv:
    """A command whose first argument is APP: with $TASKQ_APP set it may be left out."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        app = os.environ.get("TASKQ_APP")
        left_out = not args or args[0].startswith("-") or not names_an_app(args[0])
        if app and left_out:
            args = [app, *args]
        elif left_out and not ctx.resilient_parsing and "--help" not in args and (
                not args or args[0].startswith("-") or args[0] in getattr(self, "commands", {})):
            raise click.UsageError("Missing argument 'APP' (package.module:app), or set $TASKQ_APP", ctx)
        return super().parse_args(ctx, args)  # type: ignore[misc, no-any-return]


class AppCommand(_AppFromEnv, click.Command):
    pass


class AppGroup(_AppFromEnv, click.Group):
    pass


def serve_metrics(registry: Any, port: int, host: str) -> None:
    from taskq import metrics

    try:
        metrics.serve(registry, port, host)
    except OSError as exc:
        raise click.ClickException(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None


def on_stop_signals(stop: Callable[[], None], kill: Callable[[], None] | None = None) -> None:
    """First SIGTERM/SIGINT stops gracefully; a second one calls `kill` (stop at once), or exits at
    once (leases bring jobs back)."""
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if seen and kill is not None:
            kill()
            return
        if seen:
            click.echo("taskq: second signal, exiting now; unfinished jobs return when their leases lapse",
                       err=True)
            os._exit(1)
        seen.append(signum)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def exit_now(worker: Worker) -> None:
    """A worker's second signal: its unfinished jobs go back to their queues at once, then it exits."""
    click.echo("taskq: second signal, giving the unfinished jobs back and exiting now", err=True)
    worker.stop_now()
    os._exit(1)



def json_arg(text: str, option: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=f"'{option}'") from None
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {'list' if kind is list else 'object'}, got {text!r}",
                                 param_hint=f"'{option}'")
    return value


def supervise(app_path: str, app: TaskQ, opts: WorkerOptions, url: str | None) -> int:
    """`-p P`: P worker processes with the same options, under a supervisor; its exit code."""
    if url:
        os.environ["TASKQ_URL"] = url  # children read it; kept out of argv (ps shows argv)
    consumed = list(opts.queues) or app.queues or ["default"]
    fleet = None
    if opts.metrics_port is not None:
        from taskq import metrics

        fleet = metrics.Fleet(app, consumed)
        serve_metrics(fleet.registry, opts.metrics_port, opts.metrics_host)
    sup = Supervisor(app, lambda child_id: opts.child_argv(app_path, os.getpid(), child_id), opts.processes,
                     consumed, grace=opts.grace, env=fleet.child_env() if fleet else None,
                     on_child_exit=fleet.child_exited if fleet else None)
    def kill() -> None:
        click.echo("taskq: second signal, killing the worker processes now", err=True)
        sup.kill()

    on_stop_signals(sup.stop, kill)
    try:
        return int(run(sup.run))
    finally:
        if fleet is not None:
            fleet.close()


def check_port(host: str, port: int) -> None:
    """Fail in one line if the dashboard cannot listen there (a busy port), before it says its URL."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def load_app(path: str, url: str | None = None) -> TaskQ:
    """Import `package.module:app` (or `package.module` holding exactly one TaskQ, or building
    one as its `app` on demand, PEP 562: taskq.contrib.django sets Django up first)."""
    module_name, _, attr = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the app lives beside the caller
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from None
    if attr:
        if not hasattr(module, attr):  # a typo, not a value of the wrong type ("found NoneType")
            raise ConfigError(f"module {module_name!r} has no attribute {attr!r}")
        app = getattr(module, attr)
        if not isinstance(app, TaskQ):
            raise ConfigError(f"{path!r} is not a taskq.TaskQ (found {type(app).__name__})")
    else:
        apps = [v for v in vars(module).values() if isinstance(v, TaskQ)]
        if not apps and hasattr(module, "__getattr__"):
            built = getattr(module, "app", None)
            apps = [built] if isinstance(built, TaskQ) else []
        if len(apps) != 1:
            raise ConfigError(f"module {module_name!r} holds {len(apps)} TaskQ apps; name one as {module_name}:NAME")
        app = apps[0]
    if url:
        app.configure(url)
    return app


def app_of(path: str, url: str | None) -> TaskQ:
    """The app APP names (load_app, looked up at each call so tests can stand in for it), its
    errors as one line."""
    return cast(TaskQ, run(lambda: load_app(path, url)))


def group_app(ctx: click.Context, url: str | None) -> TaskQ:
    """The app of a command group's APP (ctx.obj)."""
    return app_of(ctx.obj, url)


#: --url, on every command that reaches Redis
url_option = click.option("--url", envvar="TASKQ_URL", help="Redis URL (overrides the app's).")


def echo(data: Any, as_json: bool, human: Callable[[Any], list[str]]) -> None:
    click.echo(json.dumps(data, indent=2, default=repr, ensure_ascii=False) if as_json else "\n".join(human(data)))
