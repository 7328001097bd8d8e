"""`taskq dlq APP list|show|replay|purge`: the dead-letter list, over the read model (views.py)."""

from __future__ import annotations

import json
import sys

import click

from taskq import views
from taskq.cli import render
from taskq.cli.parts import AppGroup, echo, group_app, one_line, run, url_option


@click.group(cls=AppGroup)
@click.argument("app_path", metavar="APP")
@click.pass_context
def dlq(ctx: click.Context, app_path: str) -> None:
    """The dead-letter list: list, show, replay (attempts reset) or purge dead jobs."""
    ctx.obj = app_path


@dlq.command("list")
@click.option("--queue", "queue_name", help="Only this queue; default every known queue.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Most jobs per queue.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
@url_option
@click.pass_context
def dlq_list(ctx: click.Context, queue_name: str | None, limit: int, as_json: bool, url: str | None) -> None:
    """Dead jobs, newest first: id, queue, task, attempts, dead since, reason."""
    app = group_app(ctx, url)
    rows = run(lambda: views.dead_jobs(app, views.check_queue(app, queue_name), limit))
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(render.dead(rows)))


@dlq.command("show")
@click.argument("job_id", metavar="ID")
@click.option("--queue", "queue_name", help="The job's queue (default: look in every known queue).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@url_option
@click.pass_context
def dlq_show(ctx: click.Context, job_id: str, queue_name: str | None, as_json: bool, url: str | None) -> None:
    """One dead job with its arguments and full traceback."""
    app = group_app(ctx, url)
    record = run(lambda: views.dead_record(app, job_id, queue_name))
    echo(views.describe(app, record), as_json, render.job)


@dlq.command("replay")
@click.option("--id", "job_id", help="Replay this job.")
@click.option("--all", "every", is_flag=True, help="Replay every dead job (of --queue, or of every queue).")
@click.option("--queue", "queue_name", help="Only this queue.")
@url_option
@click.pass_context
def dlq_replay(ctx: click.Context, job_id: str | None, every: bool, queue_name: str | None, url: str | None) -> None:
    """Put dead jobs back on their ready list with their attempts reset."""
    if bool(job_id) == every:
        raise click.UsageError("give exactly one of --id ID or --all")
    app = group_app(ctx, url)
    if job_id:
        record = run(lambda: views.dead_record(app, job_id, queue_name))
        if not run(lambda: views.replay(app, record)):
            raise click.ClickException(f"job {job_id} left the dead-letter list meanwhile; nothing replayed")
        click.echo(f"replayed 1 job ({job_id}, queue {record.queue})")
        return
    replayed = 0

    def skipped(dead_id: str, why: str) -> None:
        click.echo(f"not replayed: {dead_id}: {why}", err=True)

    with one_line():
        for q in views.check_queue(app, queue_name):
            count, replays = views.replay_many(app, q, skipped)
            if not count:
                continue
            with click.progressbar(length=count, label=f"replaying {q}", file=sys.stderr) as progress:
                for ok in replays:  # one job at a time: the bar moves
                    replayed += ok
                    progress.update(1)
    click.echo(f"replayed {replayed} job(s)")


@dlq.command("purge")
@click.option("--id", "job_id", help="Delete this dead job.")
@click.option("--all", "every", is_flag=True, help="Delete every dead job (of --queue, or of every queue).")
@click.option("--yes", is_flag=True, help="Confirm --all.")
@click.option("--queue", "queue_name", help="Only this queue.")
@url_option
@click.pass_context
def dlq_purge(ctx: click.Context, job_id: str | None, every: bool, yes: bool, queue_name: str | None,
              url: str | None) -> None:
    """Delete dead jobs for good."""
    if bool(job_id) == every:
        raise click.UsageError("give exactly one of --id ID or --all --yes")
    if every and not yes:
        raise click.UsageError("--all deletes every dead job for good; add --yes to confirm")
    app = group_app(ctx, url)
    if job_id:
        record = run(lambda: views.dead_record(app, job_id, queue_name))
        run(lambda: views.purge(app, record))
        click.echo(f"purged 1 job ({job_id}, queue {record.queue})")
        return
    with one_line():
        done = sum(views.purge_all(app, q) for q in views.check_queue(app, queue_name))
    click.echo(f"purged {done} job(s)")


