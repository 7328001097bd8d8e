"""`taskq partition APP Q list|show P|pause P|resume P|backoff P SECONDS|limit P [--max-running N]
[--rate-limit R]`: a queue's partitions, read over the read model (partition_views.py), changed
through `taskq.Partition` (so the library's checks and one-line errors apply)."""

from __future__ import annotations

import dataclasses
import os
from typing import cast

import click

from taskq import partition_views, views
from taskq.app import TaskQ
from taskq.cli import render
from taskq.cli.parts import AppGroup, app_of, echo, run, url_option
from taskq.partitions import Partition


class QueueGroup(AppGroup):
    """APP then Q: with $TASKQ_APP set, `taskq partition email list` means queue `email` (a name
    that is also an importable module), since what follows it is a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if os.environ.get("TASKQ_APP") and len(args) >= 2 and args[1] in self.commands and ":" not in args[0]:
            args = [os.environ["TASKQ_APP"], *args]
        return super().parse_args(ctx, args)


@click.group(cls=QueueGroup)
@click.argument("app_path", metavar="APP")
@click.argument("queue_name", metavar="Q")
@click.pass_context
def partition(ctx: click.Context, app_path: str, queue_name: str) -> None:
    """A queue's partitions (options(partition=)): list them, show one, pause, resume or back one
    off for every worker, give one limits of its own."""
    ctx.obj = Target(app_path, queue_name)


@dataclasses.dataclass(frozen=True)
class Target:
    """What the group's arguments name: APP and Q."""

    app_path: str
    queue: str

    def app(self, url: str | None) -> TaskQ:
        """The app, once Q is known to be one of its queues (else the one-line error of views)."""
        app = app_of(self.app_path, url)
        run(lambda: views.check_queue(app, self.queue))
        return app

    def partition(self, name: str, url: str | None) -> Partition:
        app = self.app(url)
        return cast(Partition, run(lambda: app.partition(self.queue, name)))


def _target(ctx: click.Context) -> Target:
    return cast(Target, ctx.obj)


@partition.command("list")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=1), help="Most partitions.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@url_option
@click.pass_context
def partition_list(ctx: click.Context, limit: int, as_json: bool, url: str | None) -> None:
    """Partitions with jobs waiting, the largest backlog first, then paused or backing-off ones."""
    target = _target(ctx)
    app = target.app(url)
    echo(run(lambda: partition_views.partition_list(app, target.queue, limit)), as_json, render.partitions)


@partition.command("show")
@click.argument("name", metavar="P")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@url_option
@click.pass_context
def partition_show(ctx: click.Context, name: str, as_json: bool, url: str | None) -> None:
    """One partition: its backlog, running jobs, limits, pause or backoff."""
    target = _target(ctx)
    app = target.app(url)
    run(lambda: app.partition(target.queue, name))  # the name's checks
    echo(run(lambda: partition_views.partition_show(app, target.queue, name)), as_json, render.partition)


@partition.command("pause")
@click.argument("name", metavar="P")
@url_option
@click.pass_context
def partition_pause(ctx: click.Context, name: str, url: str | None) -> None:
    """No job of P starts, on any worker, until resume (running ones finish)."""
    p = _target(ctx).partition(name, url)
    changed = run(p.pause)
    click.echo(f"paused {p.name} of {p.queue}" if changed else f"{p.name} of {p.queue} was paused already")


@partition.command("resume")
@click.argument("name", metavar="P")
@url_option
@click.pass_context
def partition_resume(ctx: click.Context, name: str, url: str | None) -> None:
    """P's jobs may start again (a backoff still holds until it ends: `backoff P 0`)."""
    p = _target(ctx).partition(name, url)
    changed = run(p.resume)
    click.echo(f"resumed {p.name} of {p.queue}" if changed else f"{p.name} of {p.queue} was not paused")


@partition.command("backoff")
@click.argument("name", metavar="P")
@click.argument("seconds", type=click.FloatRange(min=0))
@url_option
@click.pass_context
def partition_backoff(ctx: click.Context, name: str, seconds: float, url: str | None) -> None:
    """No job of P starts for SECONDS (0 ends a backoff, such as one RateLimited(partition=True) set)."""
    p = _target(ctx).partition(name, url)
    run(lambda: p.backoff(seconds))
    click.echo(f"{p.name} of {p.queue}: " + (f"backing off for {seconds:g} s" if seconds else "backoff ended"))


@partition.command("limit")
@click.argument("name", metavar="P")
@click.option("--max-running", type=click.IntRange(min=1), help="Most of P's jobs running at once.")
@click.option("--rate-limit", help="Most starts of P's jobs per window: N/s, N/m or N/h.")
@url_option
@click.pass_context
def partition_limit(ctx: click.Context, name: str, max_running: int | None, rate_limit: str | None,
                    url: str | None) -> None:
    """Give P limits of its own over the queue's (an option left out: the queue's limit for it);
    with neither option, the queue's limits again."""
    p = _target(ctx).partition(name, url)
    run(lambda: p.limit(max_running=max_running, rate_limit=rate_limit))
    own = ", ".join(f"{k} {v}" for k, v in (("max_running", max_running), ("rate_limit", rate_limit)) if v)
    click.echo(f"{p.name} of {p.queue}: " + (f"own limits {own}" if own else "the queue's limits again"))
