"""Parts of the `taskq` command that are not commands: APP taken from $TASKQ_APP, the signal
handling of the long-running commands, the metrics endpoint, JSON options."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click


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
    """First SIGTERM/SIGINT stops gracefully; a second one exits at once (leases bring jobs back)."""
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if seen and kill is not None:
            click.echo("taskq: second signal, killing the worker processes now", err=True)
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



def json_arg(text: str, option: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=f"'{option}'") from None
    if not isinstance(value, kind):
        raise click.BadParameter(f"must be a JSON {'list' if kind is list else 'object'}, got {text!r}",
                                 param_hint=f"'{option}'")
    return value


