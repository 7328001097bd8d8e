"""`taskq relay APP --dsn DSN` and `taskq outbox APP --dsn DSN init|status`: the transactional
outbox's relay (taskq/relay.py) and its table (taskq/outbox.py)."""

from __future__ import annotations

import json

import click

from taskq import outbox as outbox_table
from taskq.cli.options import WorkerOptions
from taskq.cli.parts import AppCommand, AppGroup, app_of, on_stop_signals, run, url_option
from taskq.log import configure
from taskq.relay import BATCH, POLL, Relay

#: --dsn, on every outbox command
dsn_option = click.option("--dsn", required=True, envvar="TASKQ_OUTBOX_DSN",
                          help="The database holding taskq_outbox: postgresql://... or sqlite:///PATH.")


@click.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@dsn_option
@url_option
@click.option("--batch", default=BATCH, show_default=True, type=click.IntRange(min=1),
              help="Rows moved per transaction at most.")
@click.option("--poll", default=POLL, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds between looks at the table when no commit woke the relay (SQLite: always).")
@WorkerOptions.shared("log_level", "log_format")
def relay(app_path: str, dsn: str, url: str | None, batch: int, poll: float, log_level: str,
          log_format: str) -> None:
    """Move committed outbox rows to Redis as jobs (run as many as you like on PostgreSQL)."""
    configure(log_level, log_format)
    app = app_of(app_path, url)
    mover = Relay(app, dsn, batch=batch, poll=poll)
    on_stop_signals(mover.stop)
    run(mover.run)


# --dsn after APP, before the subcommand (options of the subcommand pass through to it)
@click.group(cls=AppGroup, context_settings={"allow_interspersed_args": True, "ignore_unknown_options": True})
@click.argument("app_path", metavar="APP")
@dsn_option
@click.pass_context
def outbox(ctx: click.Context, app_path: str, dsn: str) -> None:
    """The outbox table: create it (init), or show its backlog (status)."""
    ctx.obj = (app_path, dsn)


@outbox.command("init")
@click.pass_context
def outbox_init(ctx: click.Context) -> None:
    """Create the table taskq_outbox (and its trigger on PostgreSQL) if missing."""
    _, dsn = ctx.obj
    run(lambda: outbox_table.init(dsn))
    click.echo("taskq_outbox ready")


@outbox.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.pass_context
def outbox_status(ctx: click.Context, as_json: bool) -> None:
    """Rows waiting for a relay (of the app's namespace) and the age of the oldest."""
    app_path, dsn = ctx.obj
    app = app_of(app_path, None)
    state = run(lambda: outbox_table.status(dsn, app.namespace))
    if as_json:
        click.echo(json.dumps({"namespace": app.namespace, "rows": state.rows, "oldest_age_s": state.oldest_age_s}))
        return
    age = "-" if state.oldest_age_s is None else f"{state.oldest_age_s:.1f} s"
    click.echo(f"outbox  namespace {app.namespace}  rows {state.rows}  oldest {age}")
