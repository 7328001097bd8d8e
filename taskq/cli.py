"""The `taskq` command: parse flags, build objects, map errors to one line. Nothing else."""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from taskq.app import TaskQ
from taskq.beat import LEASE, Beat
from taskq.errors import ConfigError, TaskqError
from taskq.log import configure
from taskq.message import pack, unpack
from taskq.status import snapshot
from taskq.supervisor import Supervisor
from taskq.worker import Worker


def load_app(path: str, url: str | None = None) -> TaskQ:
    """Import `package.module:app` (or `package.module` holding exactly one TaskQ)."""
    module_name, _, attr = path.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the app lives beside the caller
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from None
    if attr:
        app = getattr(module, attr, None)
        if not isinstance(app, TaskQ):
            raise ConfigError(f"{path!r} is not a taskq.TaskQ (found {type(app).__name__})")
    else:
        apps = [v for v in vars(module).values() if isinstance(v, TaskQ)]
        if len(apps) != 1:
            raise ConfigError(f"module {module_name!r} holds {len(apps)} TaskQ apps; name one as {module_name}:NAME")
        app = apps[0]
    if url:
        app.url = url
    return app


def _run(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except TaskqError as exc:
        raise click.ClickException(str(exc)) from None


_url_option = click.option("--url", envvar="TASKQ_URL", help="Redis URL (overrides the app's).")
_log_options = [
    click.option("--log-level", default="info", show_default=True,
                 type=click.Choice(["debug", "info", "warning", "error"])),
    click.option("--log-format", default="console", show_default=True, type=click.Choice(["console", "json"])),
]


@click.group()
@click.version_option(package_name="taskq")
def main() -> None:
    """taskq: distributed tasks on Redis."""


@main.command()
@click.argument("app_path", metavar="APP")
@click.option("-q", "--queue", "queues", multiple=True, help="Queue to consume (repeatable); default all of the app's.")
@click.option("-c", "--concurrency", default=8, show_default=True, type=click.IntRange(min=1),
              help="Jobs run at once in each process.")
@click.option("-p", "--processes", default=0, show_default=True, type=click.IntRange(min=0),
              help="Worker processes under a supervisor that replaces any that dies; 0 = run in this process.")
@click.option("--max-jobs-per-child", type=click.IntRange(min=1), default=None,
              help="With -p: replace a worker process after this many jobs.")
@click.option("--max-memory-per-child", type=click.FloatRange(min=1), default=None, metavar="MB",
              help="With -p: replace a worker process once its resident memory exceeds MB MiB.")
@click.option("--prefetch", type=click.IntRange(min=0), default=None,
              help="Jobs leased ahead of free slots, per process (default: the concurrency).")
@click.option("--grace", default=30.0, show_default=True, type=click.FloatRange(min=0),
              help="Seconds running jobs get to finish on SIGTERM before being given back.")
@click.option("--burst", is_flag=True, help="Exit once the queues are empty.")
@_url_option
@_log_options[0]
@_log_options[1]
@click.option("--parent-pid", type=int, default=None, hidden=True)  # set by the supervisor for its children
@click.option("--worker-id", default=None, hidden=True)
def worker(app_path: str, queues: tuple[str, ...], concurrency: int, processes: int,
           max_jobs_per_child: int | None, max_memory_per_child: float | None, prefetch: int | None,
           grace: float, burst: bool,
           url: str | None, log_level: str, log_format: str, parent_pid: int | None,
           worker_id: str | None) -> None:
    """Run jobs from the app's queues until SIGTERM or Ctrl-C."""
    configure(log_level, log_format)
    child = parent_pid is not None
    if (max_jobs_per_child or max_memory_per_child) and not (processes or child):
        raise click.UsageError("--max-jobs-per-child and --max-memory-per-child need -p/--processes")
    if burst and processes:
        raise click.UsageError("--burst cannot be combined with -p/--processes")
    app = _run(lambda: load_app(app_path, url))
    if processes:
        if url:
            os.environ["TASKQ_URL"] = url  # children read it; kept out of argv (ps shows argv)

        def command(child_id: str) -> list[str]:
            argv = [sys.executable, "-m", "taskq", "worker", app_path, "-c", str(concurrency),
                    "--grace", str(grace), "--log-level", log_level, "--log-format", log_format,
                    "--parent-pid", str(os.getpid()), "--worker-id", child_id]
            for q in queues:
                argv += ["-q", q]
            if max_jobs_per_child:
                argv += ["--max-jobs-per-child", str(max_jobs_per_child)]
            if max_memory_per_child:
                argv += ["--max-memory-per-child", str(max_memory_per_child)]
            if prefetch is not None:
                argv += ["--prefetch", str(prefetch)]
            return argv

        sup = Supervisor(app, command, processes, list(queues) or app.queues or ["default"], grace=grace)
        _on_stop_signals(sup.stop, sup.kill)
        sys.exit(_run(sup.run))
    w = _run(lambda: Worker(app, queues or None, concurrency=concurrency, grace=grace, burst=burst,
                            max_jobs=max_jobs_per_child, max_memory_mb=max_memory_per_child,
                            kill_on_timeout=child, parent_pid=parent_pid, worker_id=worker_id,
                            prefetch=prefetch))
    _on_stop_signals(w.stop)
    _run(w.run)


def _on_stop_signals(stop: Callable[[], None], kill: Callable[[], None] | None = None) -> None:
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


@main.command()
@click.argument("app_path", metavar="APP")
@click.option("--lease", default=LEASE, show_default=True, type=click.FloatRange(min=0.5),
              help="Seconds the leader lease lasts; another beat takes over this long after the leader dies.")
@_url_option
@_log_options[0]
@_log_options[1]
def beat(app_path: str, lease: float, url: str | None, log_level: str, log_format: str) -> None:
    """Fire the app's cron schedules and promote due delayed jobs (run as many as you like)."""
    configure(log_level, log_format)
    app = _run(lambda: load_app(app_path, url))
    b = Beat(app, lease=lease)
    _on_stop_signals(b.stop)
    _run(b.run)


@main.command()
@click.argument("app_path", metavar="APP")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
@_url_option
def status(app_path: str, as_json: bool, url: str | None) -> None:
    """Queue depths, live workers, the beat leader and cron schedules."""
    app = _run(lambda: load_app(app_path, url))
    data = _run(lambda: snapshot(app))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{'queue':<20} {'ready':>8} {'scheduled':>10} {'running':>8} {'dead':>8}")
    for q, d in data["queues"].items():
        click.echo(f"{q:<20} {d['ready']:>8} {d['scheduled']:>10} {d['running']:>8} {d['dead']:>8}")
    click.echo("")
    click.echo(f"live workers: {len(data['workers'])}")
    if data["workers"]:
        click.echo(f"{'worker':<34} {'host':<16} {'pid':>7} {'conc':>5} {'done':>9} {'beat':>6}  queues")
        for w in data["workers"]:
            click.echo(f"{w['id']:<34} {w['host']:<16} {w['pid']:>7} {w['concurrency']:>5} {w['processed']:>9} "
                       f"{w['heartbeat_age_s']:>5.1f}s  {','.join(w['queues'])}")
    if data["schedules"]:
        beat = data["beat"]
        click.echo("")
        click.echo(f"beat leader: {beat['leader']} (lease {beat['lease_left_s']:.1f}s left)" if beat["leader"]
                   else "beat leader: none (no `taskq beat` is running)")
        click.echo(f"{'schedule':<20} {'cron':<16} {'tz':<16} {'catchup':<8} {'last fired':<24} {'next fire':<24}")
        for s in data["schedules"]:
            click.echo(f"{s['name']:<20} {s['cron']:<16} {s['tz']:<16} {s['catchup']:<8} "
                       f"{s['last_fired'] or 'never':<24} {s['next_fire']:<24}")


@main.command()
@click.argument("app_path", metavar="APP")
@click.argument("action", type=click.Choice(["list", "replay", "purge"]))
@click.option("--queue", "queue_name", help="Only this queue; default every known queue.")
@click.option("--id", "job_id", help="Only this job.")
@_url_option
def dlq(app_path: str, action: str, queue_name: str | None, job_id: str | None, url: str | None) -> None:
    """Dead-letter list: list, replay (attempts reset) or purge jobs."""
    app = _run(lambda: load_app(app_path, url))
    queues = [queue_name] if queue_name else sorted(set(_run(app.broker.queues)) | set(app.queues))
    done = 0
    for q in queues:
        ids = [job_id] if job_id else _run(functools.partial(app.broker.dead_ids, q, 10_000))
        for jid in ids:
            fields = _run(functools.partial(app.broker.job_fields, q, jid))
            if action == "list":
                if fields.get("status") == b"dead":
                    reason = fields.get("reason", b"").decode("utf-8", "replace")
                    click.echo(f"{q}\t{jid}\t{reason}")
                    done += 1
            elif action == "replay":
                done += _replay(app, q, jid, fields)
            elif _run(functools.partial(app.broker.purge, q, jid)):
                done += 1
    if job_id and not done and action != "list":
        raise click.ClickException(f"no dead job {job_id} in {', '.join(queues)}")
    if action != "list":
        click.echo(f"{action}: {done} job(s)")


def _replay(app: TaskQ, queue: str, job_id: str, fields: dict[str, bytes]) -> int:
    try:
        message = unpack(fields.get("msg", b""), app.max_message_bytes)
    except TaskqError as exc:
        click.echo(f"{queue}\t{job_id}\tnot replayed: {exc}", err=True)
        return 0
    fresh = message.__class__(**{**_as_dict(message), "attempt": 1})
    return int(_run(lambda: app.broker.replay(queue, job_id, pack(fresh, app.max_message_bytes))))


def _as_dict(message: Any) -> dict[str, Any]:
    return {name: getattr(message, name) for name in message.__dataclass_fields__}


@main.command()
@click.argument("app_path", metavar="APP")
@click.argument("task_name", metavar="TASK")
@click.option("--args", "args_json", default="[]", help="JSON list of positional arguments.")
@click.option("--kwargs", "kwargs_json", default="{}", help="JSON object of keyword arguments.")
@click.option("--delay", default=0.0, type=click.FloatRange(min=0), help="Seconds before the job is due.")
@click.option("--queue", "queue_name", help="Queue (default the task's).")
@_url_option
def enqueue(app_path: str, task_name: str, args_json: str, kwargs_json: str, delay: float,
            queue_name: str | None, url: str | None) -> None:
    """Enqueue one call of TASK and print its job id."""
    try:
        args, kwargs = json.loads(args_json), json.loads(kwargs_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}") from None
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise click.BadParameter("--args must be a JSON list and --kwargs a JSON object")
    app = _run(lambda: load_app(app_path, url))
    task = _run(lambda: app.get_task(task_name))
    job = _run(lambda: task.options(delay=delay, queue=queue_name).delay(*args, **kwargs))
    click.echo(job.id)


if __name__ == "__main__":
    main()
