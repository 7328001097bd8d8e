"""Plain-text tables for the CLI: status, one job, the dead-letter list. Data in, lines out.
Tables are rich's: as wide as the terminal (long values cut with an ellipsis), as wide as they
need when the output is not a terminal (so a pipe or a file gets whole values)."""

from __future__ import annotations

import io
import json
import shutil
import sys
from collections.abc import Collection, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from taskq.views import DeadJob

#: columns a table may take when the output is not a terminal
WIDE = 400


def table(header: Sequence[str], rows: Sequence[Sequence[object]], right: Collection[int] = ()) -> list[str]:
    """Aligned columns, two spaces apart, no borders; the columns numbered in `right` right-aligned.
    Values are shown as text (never read as rich markup)."""
    t = Table(box=None, pad_edge=False, show_edge=False, header_style="", padding=(0, 1))
    for i, name in enumerate(header):
        t.add_column(name, justify="right" if i in right else "left", no_wrap=True, overflow="ellipsis")
    for row in rows:
        t.add_row(*(Text(str(cell)) for cell in row))
    width = shutil.get_terminal_size((WIDE, 24)).columns if sys.stdout.isatty() else WIDE
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, highlight=False, emoji=False, markup=False).print(t)
    return [line.rstrip() for line in out.getvalue().splitlines()]


def bar(fraction: float, width: int = 10) -> str:
    """`[####------]  40%`: a progress fraction as text."""
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {fraction * 100:3.0f}%"


def age(seconds: float | None) -> str:
    """1.2s, 3m04s, 2h05m, 3d04h: short and sortable by eye; '-' for none."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def status(data: dict[str, Any]) -> list[str]:
    """The human form of status.snapshot()."""
    lines = table(["queue", "ready", "scheduled", "reserved", "running", "dead", "oldest ready", ""],
                  [[q, d["ready"], d["scheduled"], d["reserved"], d["running"], d["dead"],
                    age(d["oldest_ready_age_s"]), "paused" if d.get("paused") else ""]
                   for q, d in data["queues"].items()], right=range(1, 7))
    if data.get("limits") or data.get("task_limits"):
        lines += ["", *(f"limits of {q}: {limit}" for q, limit in data["limits"].items()),
                  *(f"limits of task {t}: {limit}" for t, limit in data.get("task_limits", {}).items())]
    waits = [(q, d["held_by"]) for q, d in data["queues"].items() if any(
        v for k, v in d.get("held_by", {}).items() if k != "by_task")]
    if waits:
        lines.append("")
        for q, h in waits:
            parts = [f"{h[k]} by {label}" for k, label in (("rate", "rate limit"), ("cap", "max_running"),
                                                           ("ordering_key", "ordering key")) if h[k]]
            if h["task_limits"]:
                tasks = ", ".join(f"{t} {n}" for t, n in h["by_task"].items())
                parts.append(f"{h['task_limits']} by task limits ({tasks})")
            lines.append(f"held in {q}: {', '.join(parts)}")
    if busy := busy_partitions(data["queues"]):
        lines += ["", *busy]
    if data["running"]:
        shown = [f"{bar(r['progress']['fraction'])} {r['progress']['text']}".rstrip() if r["progress"] else "-"
                 for r in data["running"]]
        lines += ["", *table(["running job", "queue", "task", "try", "for", "progress"],
                             [[r["id"], r["queue"], r["task"] or "?", r["attempt"] or "?", age(r["running_s"]), p]
                              for r, p in zip(data["running"], shown, strict=True)], right=(3, 4))]
    lines += ["", f"live workers: {len(data['workers'])}"]
    if data["workers"]:
        lines += table(["worker", "host", "pid", "conc", "done", "beat", "queues"],
                       [[w["id"], w["host"], w["pid"], w["concurrency"], w["processed"], f"{w['heartbeat_age_s']:.1f}s",
                         ",".join(w["queues"])] for w in data["workers"]], right=range(2, 6))
    if data["schedules"]:
        beat = data["beat"]
        lines.append("")
        lines.append(f"beat leader: {beat['leader']} (lease {beat['lease_left_s']:.1f}s left)" if beat["leader"]
                     else "beat leader: none (no `taskq beat` is running)")
        lines += table(["schedule", "when", "tz", "catchup", "last fired", "next fire", "runs", "source",
                        "last skipped (overlap)"],
                       [[s["id"], s["when"], s["tz"], s["catchup"], s["last_at"] or "never",
                         s["next_at"] or ("paused" if s["paused"] else "ended"), s["runs"], s["source"],
                         s["skipped_at"] or ("never" if s["overlap"] == "skip" else "-")]
                        for s in data["schedules"]])
    return lines


def busy_partitions(queues: dict[str, Any]) -> list[str]:
    """status: for each queue with partitions that have jobs waiting, how many, and the largest backlog."""
    lines = []
    for q, d in queues.items():
        if d.get("partitions"):
            top = d.get("largest_partition")
            largest = f", the largest backlog: {top['name']} ({top['ready']} ready)" if top else ""
            lines.append(f"partitions of {q}: {d['partitions']} with jobs waiting{largest}")
    return lines


def job(view: dict[str, Any]) -> list[str]:
    """The human form of views.describe(): one `name: value` line per field, then the traceback."""
    lines = [f"{'id':<10} {view['id']}", f"{'queue':<10} {view['queue']}", f"{'task':<10} {view['task']}",
             f"{'status':<10} {view['status']}"]
    if view.get("partition") is not None:
        lines.append(f"{'partition':<10} {view['partition']}")
    if view.get("flow"):
        f = view["flow"]
        lines.append(f"{'flow':<10} {f['id']} step {f['step']} of {f['steps']}")
    if view.get("attempt") is not None:  # of how many: unknown for a record written before it kept that
        of = "" if view.get("max_attempts") is None else f" of {view['max_attempts']}"
        lines.append(f"{'attempt':<10} {view['attempt']}{of}")
    if view.get("message_error"):
        lines.append(f"{'message':<10} {view['message_error']}")
    else:
        lines.append(f"{'args':<10} {compact(view['args'])}")
        lines.append(f"{'kwargs':<10} {compact(view['kwargs'])}")
    if view.get("due"):  # scheduled, or retrying: when it runs next
        lines.append(f"{'due':<10} {view['due']}")
    for name in ("enqueued", "started", "finished"):
        if view.get(name):
            lines.append(f"{name:<10} {view[name]}")
    if view.get("progress"):
        p = view["progress"]
        lines.append(f"{'progress':<10} {bar(p['fraction'])} {p['text']}".rstrip())
    if "result" in view:
        lines.append(f"{'result':<10} {compact(view['result'])}")
    if view.get("reason"):
        lines.append(f"{'reason':<10} {view['reason']}")
    if view.get("error"):
        lines += ["error:", *("  " + line for line in view["error"].rstrip().splitlines())]
    return lines


def job_rows(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`taskq job --queue Q --state S`: one line per job."""
    if not rows:
        return ["no jobs"]
    return table(["id", "task", "status", "try", "enqueued", "due/ended", "reason"],
                 [[r["id"], r["task"] or "?", r["status"] or "?", r["attempt"] or "?", r["enqueued"] or "",
                   r.get("due") or r.get("finished") or "", r["reason"] or r.get("args") or ""] for r in rows],
                 right=(3,))


def log_lines(lines: Sequence[dict[str, Any]]) -> list[str]:
    """`taskq job ID --logs`: one line per kept log line, oldest first."""
    if not lines:
        return ["no log lines (none written, keep_logs=False, or not sent yet)"]
    return [f"{line['at']} {line['level']:<8} {line['text']}" for line in lines]


def queues(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`taskq queue list`: one line per queue."""
    return table(["queue", "ready", "scheduled", "reserved", "running", "dead", "state"],
                 [[r["queue"], r["ready"], r["scheduled"], r["reserved"], r["running"], r["dead"],
                   "paused" if r["paused"] else "active"] for r in rows], right=range(1, 6))


#: how a fair queue's jobs without a partition (one partition of their own, named '') are listed
NO_PARTITION = "(no partition)"


def partition_state(view: dict[str, Any]) -> str:
    """Why a partition's jobs may not start now, as a word or two ('' if nothing holds it)."""
    if view["blocked"] == "backing off":
        return f"backing off until {view['paused_until']}"
    return str(view["blocked"] or "")


def partitions(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`taskq partition APP Q list`: one line per partition, the largest backlog first."""
    if not rows:
        return ["no partition has jobs waiting, is paused or backs off"]
    return table(["partition", "ready", "running", "max running", "rate limit", "state", "limits"],
                 [[r["name"] or NO_PARTITION, r["ready"], r["running"], r["max_running"] or "-", r["rate_limit"] or "-",
                   partition_state(r), "own" if r["own_limits"] else "queue's"] for r in rows], right=range(1, 4))


def partition(view: dict[str, Any]) -> list[str]:
    """`taskq partition APP Q show P`: one `name: value` line per field."""
    limits = f"its own (the queue's: {view['queue_limits']})" if view["own_limits"] else \
        f"the queue's: {view['queue_limits']}"
    fields = [("partition", view["name"]), ("queue", view["queue"]), ("ready", view["ready"]),
              ("running", view["running"]), ("max running", view["max_running"] or "-"),
              ("rate limit", view["rate_limit"] or "-"), ("limits", limits),
              ("state", partition_state(view) or "-")]
    return [f"{name:<12} {value}" for name, value in fields]


def schedules(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`taskq schedule APP list`: one line per schedule, by id."""
    if not rows:
        return ["no schedules"]
    return table(["schedule", "task", "queue", "when", "tz", "next fire", "last fired", "runs", "source"],
                 [[r["id"], r["task"], r["queue"], r["when"], r["tz"], schedule_next(r), r["last_at"] or "never",
                   f"{r['runs']}/{r['limit']}" if r["limit"] else r["runs"], r["source"]] for r in rows],
                 right=(7,))


def schedule_next(view: dict[str, Any]) -> str:
    return str(view["next_at"] or ("paused" if view["paused"] else "ended"))


def schedule(view: dict[str, Any]) -> list[str]:
    """`taskq schedule APP show ID`: one `name: value` line per field."""
    fields = [("schedule", view["id"]), ("task", view["task"]), ("queue", view["queue"]), ("when", view["when"]),
              ("tz", view["tz"]), ("args", compact(view["args"])), ("kwargs", compact(view["kwargs"])),
              ("next fire", schedule_next(view)), ("last fired", view["last_at"] or "never"),
              ("runs", view["runs"]), ("limit", view["limit"] or "-"), ("start at", view["start_at"] or "-"),
              ("end at", view["end_at"] or "-"), ("overlap", view["overlap"]), ("catchup", view["catchup"]),
              ("paused", "yes" if view["paused"] else "no"), ("source", view["source"])]
    return [f"{name:<11} {value}" for name, value in fields]


def dead(rows: Sequence[DeadJob]) -> list[str]:
    """`taskq dlq list`: one line per dead job."""
    return table(["id", "queue", "task", "tries", "dead since", "reason"],
                 [[r.id, r.queue, r.task or "?", r.attempts or "?", r.dead_since or "?", r.reason] for r in rows],
                 right=(3,))


def compact(value: Any) -> str:
    """A value as one line of JSON (repr for what JSON cannot show)."""
    return json.dumps(value, default=repr, ensure_ascii=False)


def event(view: dict[str, Any]) -> str:
    """One line per streamed event: time, kind, queue, task, job, attempt, then what it says."""
    extra = [f"{name}={compact(view[name])}" for name in ("error", "reason", "delay_s", "duration_ms", "progress",
                                                            "text") if name in view]
    return "  ".join([str(view["at"]), f"{view['kind']:<9}", view["queue"], view["task"] or "?", view["job_id"],
                      f"attempt {view['attempt']}", *extra])
