"""The `taskq` command: parse flags, build objects, map errors to one line. Nothing else."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import Any

import click

from taskq import job_views, views
from taskq._version import DISTRIBUTION, VERSION
from taskq.app import TaskQ
from taskq.beat import LEASE, Beat
from taskq.cli import parts, render
from taskq.cli.dlq import dlq
from taskq.cli.options import WorkerOptions
from taskq.cli.outbox import outbox, relay
from taskq.cli.partitions import partition
from taskq.cli.parts import (
    AppCommand,
    app_of,
    echo,
    json_arg,
    on_stop_signals,
    one_line,
    run,
    serve_metrics,
    supervise,
    url_option,
)
from taskq.cli.queues import queue
from taskq.cli.schedules import schedule
from taskq.cli.stats import stats
from taskq.errors import BrokerError
from taskq.log import configure


@click.group()
@click.version_option(VERSION, prog_name="taskq", message=f"%(prog)s ({DISTRIBUTION}), version %(version)s")
def main() -> None:
    """taskq: distributed tasks on Redis."""


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@WorkerOptions.click_options
@url_option
def worker(app_path: str, url: str | None, **values: Any) -> None:
    """Run jobs from the app's queues until SIGTERM or Ctrl-C."""
    opts = WorkerOptions(**values)
    configure(opts.log_level, opts.log_format)
    if (opts.max_jobs_per_child or opts.max_memory_per_child) and not (opts.processes or opts.child):
        raise click.UsageError("--max-jobs-per-child and --max-memory-per-child need -p/--processes")
    if opts.burst and opts.processes:
        raise click.UsageError("--burst cannot be combined with -p/--processes")
    app = app_of(app_path, url)
    if opts.processes:
        sys.exit(supervise(app_path, app, opts, url))
    counters = None
    if opts.child and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from taskq import metrics  # prometheus-client only in processes that count

        counters = metrics.child_metrics()
    elif opts.metrics_port is not None and not opts.child:
        from taskq import metrics

        registry, counters = metrics.worker_registry(app, list(opts.queues) or app.queues or ["default"])
        serve_metrics(registry, opts.metrics_port, opts.metrics_host)
    w = run(lambda: opts.worker(app, counters))
    on_stop_signals(w.stop, lambda: parts.exit_now(w))
    run(w.run)


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.option("--lease", default=LEASE, show_default=True, type=click.FloatRange(min=0.5),
              help="Seconds the leader lease lasts; another beat takes over this long after the leader dies.")
@url_option
@WorkerOptions.shared("log_level", "log_format", "metrics_port", "metrics_host")
def beat(app_path: str, lease: float, url: str | None, log_level: str, log_format: str,
         metrics_port: int | None, metrics_host: str) -> None:
    """Fire the app's cron schedules and promote due delayed jobs (run as many as you like)."""
    configure(log_level, log_format)
    app = app_of(app_path, url)
    b = Beat(app, lease=lease)
    if metrics_port is not None:
        from taskq import metrics

        serve_metrics(metrics.beat_registry(b, app), metrics_port, metrics_host)
    on_stop_signals(b.stop)
    run(b.run)


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@click.option("--watch", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", default=2.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds between refreshes with --watch.")
@url_option
def status(app_path: str, as_json: bool, watch: bool, interval: float, url: str | None) -> None:
    """Queue depths, running jobs and their progress, live workers, the beat leader, cron schedules."""
    app = app_of(app_path, url)
    if not watch:
        data = run(lambda: views.snapshot(app))
        click.echo(json.dumps(data, indent=2) if as_json else "\n".join(render.status(data)))
        return
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends the watch, at any moment
        _watch(app, as_json, interval)


def _watch(app: TaskQ, as_json: bool, interval: float) -> None:
    """`status --watch`: a screen per interval; through a Redis outage it says so and keeps trying."""
    while True:
        try:
            data = views.snapshot(app)
        except BrokerError as exc:
            data = {"time": views.stamp(int(time.time() * 1000), seconds=True), "unreachable": str(exc)}
        if as_json:
            text = json.dumps(data)
        elif "unreachable" in data:
            text = (f"taskq status  {data['time']}\n\n"
                    f"Redis unreachable, retrying every {interval:g} s: {data['unreachable']}")
        else:
            text = "\n".join([f"taskq status  {data['time']}", "", *render.status(data)])
        if not as_json and sys.stdout.isatty():
            click.clear()
        click.echo(text)
        time.sleep(interval)
        if not as_json and not sys.stdout.isatty():
            click.echo("")


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.argument("job_id", metavar="[ID", required=False)
@click.argument("action", metavar="[ACTION", required=False,
                type=click.Choice(["cancel", "abort", "reschedule", "priority", "run-now"]))
@click.argument("priority", metavar="[P]]]", required=False, type=int)
@click.option("--delay", type=click.FloatRange(min=0), help="With reschedule: due this many seconds from now.")
@click.option("-q", "--queue", "queue_name", help="The job's queue (default: look in every known queue).")
@click.option("--state", type=click.Choice(views.STATES), help="List the queue's jobs in this state (no ID).")
@click.option("--task", "task_name", help="With --state succeeded|cancelled: only this task's jobs.")
@click.option("--grep", help="With --state succeeded|cancelled: task name or kept arguments contain TEXT.")
@click.option("--logs", "show_logs", is_flag=True, help="With ID: the job's log lines, oldest first.")
@click.option("--page", default=1, show_default=True, type=click.IntRange(min=1), help="With --state: which 50.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@url_option
def job(app_path: str, job_id: str | None, action: str | None, priority: int | None, delay: float | None,
        queue_name: str | None, state: str | None, task_name: str | None, grep: str | None, show_logs: bool,
        page: int, as_json: bool, url: str | None) -> None:
    """One job: status, attempts, timestamps, progress, result or error. ACTION: cancel (a job not
    started never runs; a running one is not retried), abort (a running one is stopped too),
    reschedule --delay S (a job not started is due S seconds from now), priority P (a job not
    started gets priority P, 0-9) or run-now (a scheduled job, or one waiting for its retry, runs
    now). --logs: its log lines. Without ID, `--queue Q --state S` lists Q's jobs in state S, 50 a
    page; `--state succeeded|cancelled [--task T] [--grep TEXT]` the ended ones, newest first,
    of every known queue unless -q."""
    if (action == "priority") != (priority is not None):
        raise click.UsageError("priority takes P (0-9), and only priority does")
    if (action == "reschedule") != (delay is not None):
        raise click.UsageError("reschedule takes --delay S, and only reschedule does")
    app = app_of(app_path, url)
    if job_id is None:
        if state in job_views.ENDED:
            rows = run(lambda: job_views.ended_jobs(app, views.check_queue(app, queue_name), state, task=task_name,
                                                    grep=grep, offset=(page - 1) * 50))
        elif not (queue_name and state) or task_name or grep:
            raise click.UsageError("give a job ID, or --queue Q --state S to list jobs "
                                   "(--task and --grep: with --state succeeded or cancelled)")
        else:
            rows = run(lambda: views.queue_jobs(app, queue_name, state, (page - 1) * 50, 50))
        echo(rows, as_json, render.job_rows)
        return
    record = run(lambda: views.find(app, job_id, queue_name))
    if show_logs:
        echo(run(lambda: job_views.log_lines(app, record)), as_json, render.log_lines)
        return
    if action == "run-now":
        if not run(lambda: app.job(record.id, record.queue).run_now()):
            raise click.ClickException(f"run-now: not changed: job {record.id} is not scheduled or waiting for "
                                       f"a retry (it is {views.shown_status(record)})")
        click.echo(f"run-now: done ({record.id}, was {views.shown_status(record)})", err=as_json)
        record = run(lambda: views.find(app, job_id, record.queue))
    elif action in ("reschedule", "priority"):
        handle = app.job(record.id, record.queue)
        changed = run(lambda: handle.reschedule(delay=delay) if priority is None else handle.set_priority(priority))
        if not changed:
            raise click.ClickException(f"{action}: not changed: job {record.id} has started or ended "
                                       f"(it was {record.status or record.raw_status})")
        click.echo(f"{action}: done ({record.id}, was {record.status or record.raw_status})", err=as_json)
        record = run(lambda: views.find(app, job_id, record.queue))
    elif action is not None:
        handle = app.job(record.id, record.queue)
        by = f"taskq job {action} on {socket.gethostname()}"
        done = run(lambda: handle.abort(by) if action == "abort" else handle.cancel())
        said = "done" if done else "the job had ended" if action == "abort" else "not started again, or had ended"
        click.echo(f"{action}: {said} ({record.id}, was {record.status or record.raw_status})", err=as_json)
        record = run(lambda: views.find(app, job_id, record.queue))
    echo(views.describe(app, record), as_json, render.job)


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.option("-q", "--queue", "queues", multiple=True, help="Follow this queue (repeatable); default every known one.")
@click.option("--since", default="$", show_default=True,
              help="'$' from now on, '0' from the oldest event kept, or an event id to resume after.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Stop after this many seconds without an event.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@url_option
def events(app_path: str, queues: tuple[str, ...], since: str, timeout: float | None, as_json: bool,
           url: str | None) -> None:
    """Follow the event streams: every transition of every job, as it happens, until Ctrl-C."""
    app = app_of(app_path, url)
    names = run(lambda: list(queues) or app.known_queues())
    try:
        with one_line():
            for event in app.events(names, since=since, timeout=timeout):
                view = views.event_view(event)
                click.echo(json.dumps(view, ensure_ascii=False) if as_json else render.event(view))
    except KeyboardInterrupt:
        return


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="TASKQ_DASHBOARD_TOKEN", help="Require this token (Bearer, or /?token=T once).")
@click.option("--read-only", is_flag=True, help="Show everything, change nothing.")
@click.option("--insecure-no-auth", is_flag=True, help="Listen beyond loopback without a token (not advised).")
@url_option
def dashboard(app_path: str, host: str, port: int, token: str | None, read_only: bool, insecure_no_auth: bool,
              url: str | None) -> None:
    """The web dashboard: queues, jobs, dead letters, workers, schedules, and their actions."""
    if host not in ("127.0.0.1", "localhost", "::1") and not token and not insecure_no_auth:
        raise click.UsageError(f"--host {host} reaches beyond this machine: give --token T (or --insecure-no-auth)")
    try:
        import uvicorn

        from taskq.web import create_app
    except ImportError as exc:
        raise click.ClickException(
            f"the dashboard needs the extra: pip install 'taskq-redis[dashboard]' ({exc})") from None
    app = app_of(app_path, url)
    parts.check_port(host, port)
    click.echo(f"taskq dashboard on http://{host}:{port}/{' (read-only)' if read_only else ''}", err=True)
    uvicorn.run(create_app(app, token=token, read_only=read_only), host=host, port=port, log_level="warning")


@main.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.argument("task_name", metavar="TASK")
@click.option("--args", "args_json", default="[]", help="JSON list of positional arguments.")
@click.option("--kwargs", "kwargs_json", default="{}", help="JSON object of keyword arguments.")
@click.option("--delay", default=0.0, type=click.FloatRange(min=0), help="Seconds before the job is due.")
@click.option("--queue", "queue_name", help="Queue (default the task's).")
@url_option
def enqueue(app_path: str, task_name: str, args_json: str, kwargs_json: str, delay: float,
            queue_name: str | None, url: str | None) -> None:
    """Enqueue one call of TASK and print its job id."""
    args, kwargs = json_arg(args_json, "--args", list), json_arg(kwargs_json, "--kwargs", dict)
    app = app_of(app_path, url)
    task = run(lambda: app.get_task(task_name))
    job = run(lambda: task.options(delay=delay, queue=queue_name).delay(*args, **kwargs))
    click.echo(job.id)


main.add_command(dlq)
main.add_command(queue)
main.add_command(partition)
main.add_command(schedule)
main.add_command(stats)
main.add_command(relay)
main.add_command(outbox)
