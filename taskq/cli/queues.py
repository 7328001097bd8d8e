"""`taskq queue APP list|pause Q|resume Q|purge Q --yes`: the app's queues, over the read model."""

from __future__ import annotations

import socket

import click

from taskq import views
from taskq.cli import render
from taskq.cli.parts import AppGroup, echo, group_app, run, url_option


@click.group(cls=AppGroup)
@click.argument("app_path", metavar="APP")
@click.pass_context
def queue(ctx: click.Context, app_path: str) -> None:
    """The app's queues: list them, pause or resume one for every worker, purge one."""
    ctx.obj = app_path


@queue.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@url_option
@click.pass_context
def queue_list(ctx: click.Context, as_json: bool, url: str | None) -> None:
    """Every known queue: its depths and whether it is paused."""
    app = group_app(ctx, url)
    echo(run(lambda: views.queue_list(app)), as_json, render.queues)


@queue.command("pause")
@click.argument("name", metavar="Q")
@url_option
@click.pass_context
def queue_pause(ctx: click.Context, name: str, url: str | None) -> None:
    """Stop every worker leasing jobs from Q (jobs still enter it; running ones finish)."""
    _set_paused(ctx, name, url, True)


@queue.command("resume")
@click.argument("name", metavar="Q")
@url_option
@click.pass_context
def queue_resume(ctx: click.Context, name: str, url: str | None) -> None:
    """Let workers lease jobs from Q again (an idle one wakes at once)."""
    _set_paused(ctx, name, url, False)


def _set_paused(ctx: click.Context, name: str, url: str | None, paused: bool) -> None:
    app = group_app(ctx, url)
    changed = run(lambda: views.pause(app, name, paused))
    word = "paused" if paused else "resumed"
    click.echo(f"{word} {name}" if changed else f"{name} was {'paused already' if paused else 'not paused'}")


@queue.command("purge")
@click.argument("name", metavar="Q")
@click.option("--yes", is_flag=True, help="Really cancel them.")
@url_option
@click.pass_context
def queue_purge(ctx: click.Context, name: str, yes: bool, url: str | None) -> None:
    """Cancel every job of Q that has not started (ready, held by limits, scheduled, waiting for
    a retry); running jobs are left. Needs --yes."""
    if not yes:
        raise click.UsageError(f"this cancels every job of {name!r} not started yet: add --yes")
    app = group_app(ctx, url)
    done = run(lambda: views.empty(app, name, f"taskq queue purge on {socket.gethostname()}"))
    click.echo(f"cancelled {done} job(s) of {name}")


