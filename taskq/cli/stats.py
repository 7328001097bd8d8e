"""`taskq stats APP [-q Q] [--task T] [--since 24h] [--step 5m] [--json]`: the history as a table
with a text chart, from the read model (stats_views)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import click

from taskq.cli.parts import AppCommand, app_of, echo, run, url_option
from taskq.cli.render import table
from taskq.stats_views import StatsPoint

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: steps the table picks from when --step is not given: the smallest that keeps it to ROWS rows
STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86400)
ROWS = 60
#: the chart column's width, in characters
CHART = 24


def seconds(text: str) -> int:
    """'90', '90s', '15m', '24h', '7d' in seconds."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd]?)\s*", text)
    if m is None or int(m.group(1)) <= 0:
        raise click.BadParameter(f"{text!r}: give a number of seconds, or one with s, m, h or d (24h, 7d)")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def default_step(since: int) -> int:
    return next((s for s in STEPS if since / s <= ROWS), STEPS[-1])


@click.command(cls=AppCommand)
@click.argument("app_path", metavar="APP")
@click.option("-q", "--queue", default=None, help="One queue (default: every known queue, summed).")
@click.option("--task", default=None, help="One task's history (its registered name).")
@click.option("--since", default="1h", show_default=True,
              help="How far back: 90s, 15m, 24h, 7d (kept 8 days; past 24h by the hour).")
@click.option("--step", default=None, help="One row per step (60 s or a multiple; default: at most 60 rows).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of points, oldest first.")
@url_option
def stats(app_path: str, queue: str | None, task: str | None, since: str, step: str | None, as_json: bool,
          url: str | None) -> None:
    """Jobs enqueued, succeeded, failed, retried and dead, runtimes and waits, per step."""
    window = seconds(since)
    every = seconds(step) if step else default_step(window)
    app = app_of(app_path, url)
    points = run(lambda: app.stats(queue, task, since=window, step=every))
    echo([p.as_dict() for p in points], as_json, lambda _: render(points, every))


def render(points: Sequence[StatsPoint], step: int) -> list[str]:
    """One row per point: the counts, runtimes and waits, and a bar of the runs that ended
    (succeeded '#' and failed 'x', to the scale of the busiest step)."""
    most = max((p.succeeded + p.failed for p in points), default=0)
    fmt = "%Y-%m-%d %H:%M" if step < 86400 else "%Y-%m-%d"
    rows = [(p.at.strftime(fmt), p.enqueued, p.succeeded, p.failed, p.retried, p.dead, f"{p.runtime_ms_avg:.0f}",
             p.runtime_ms_max, f"{p.wait_ms_avg:.0f}", bar(p, most)) for p in points]
    total = sum(p.succeeded + p.failed for p in points)
    header = ("at (UTC)", "enqueued", "succeeded", "failed", "retried", "dead", "run ms", "run max", "wait ms",
              "runs ended")
    return [*table(header, rows, right=range(1, 9)), f"{total} runs ended, busiest step {most} (# succeeded, x failed)"]


def bar(p: StatsPoint, most: int) -> str:
    if most == 0:
        return ""
    good = round(p.succeeded * CHART / most)
    bad = round(p.failed * CHART / most)
    if p.failed and not bad:
        bad = 1  # a failure is never invisible
    return "#" * good + "x" * bad
