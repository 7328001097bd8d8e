"""`taskq schedule APP list|show ID|pause ID|resume ID|remove ID|run ID`: every schedule of the app
(declared in code, or stored at run time), through `app.schedules`, so its checks apply."""

from __future__ import annotations

import click

from taskq.cli import render
from taskq.cli.parts import AppGroup, echo, group_app, run, url_option
from taskq.errors import ConfigError
from taskq.schedules import ScheduleInfo


@click.group(cls=AppGroup)
@click.argument("app_path", metavar="APP")
@click.pass_context
def schedule(ctx: click.Context, app_path: str) -> None:
    """The app's schedules (code and stored): list, show, pause, resume, remove one, run one now."""
    ctx.obj = app_path


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@url_option
@click.pass_context
def schedule_list(ctx: click.Context, as_json: bool, url: str | None) -> None:
    """Every schedule: when it fires, when it fired last and fires next, its runs, where it is declared."""
    app = group_app(ctx, url)
    echo([i.as_view() for i in run(app.schedules.list)], as_json, render.schedules)


def _found(info: ScheduleInfo | None, schedule_id: str) -> ScheduleInfo:
    if info is None:
        raise ConfigError(f"no schedule {schedule_id!r}")
    return info


@schedule.command("show")
@click.argument("schedule_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@url_option
@click.pass_context
def schedule_show(ctx: click.Context, schedule_id: str, as_json: bool, url: str | None) -> None:
    """One schedule, every field."""
    app = group_app(ctx, url)
    info = run(lambda: _found(app.schedules.get(schedule_id), schedule_id))
    echo(info.as_view(), as_json, render.schedule)


def _change(ctx: click.Context, url: str | None, schedule_id: str, verb: str) -> None:
    app = group_app(ctx, url)
    action = {"paused": app.schedules.pause, "resumed": app.schedules.resume, "removed": app.schedules.remove}[verb]
    if not run(lambda: action(schedule_id)):
        run(lambda: _found(None, schedule_id))
    click.echo(f"{verb} {schedule_id}")


@schedule.command("pause")
@click.argument("schedule_id", metavar="ID")
@url_option
@click.pass_context
def schedule_pause(ctx: click.Context, schedule_id: str, url: str | None) -> None:
    """No tick of ID fires, whichever beat leads, until resume (paused ticks are not caught up)."""
    _change(ctx, url, schedule_id, "paused")


@schedule.command("resume")
@click.argument("schedule_id", metavar="ID")
@url_option
@click.pass_context
def schedule_resume(ctx: click.Context, schedule_id: str, url: str | None) -> None:
    """ID fires again, from its first tick at least 1 s away."""
    _change(ctx, url, schedule_id, "resumed")


@schedule.command("remove")
@click.argument("schedule_id", metavar="ID")
@url_option
@click.pass_context
def schedule_remove(ctx: click.Context, schedule_id: str, url: str | None) -> None:
    """Remove a stored schedule (one declared in code is removed from the code, or paused)."""
    _change(ctx, url, schedule_id, "removed")


@schedule.command("run")
@click.argument("schedule_id", metavar="ID")
@url_option
@click.pass_context
def schedule_run(ctx: click.Context, schedule_id: str, url: str | None) -> None:
    """Enqueue ID's call once now, outside its ticks; prints the job's id."""
    app = group_app(ctx, url)
    job = run(lambda: app.schedules.trigger(schedule_id))
    click.echo(f"enqueued {job.id} ({schedule_id})")
