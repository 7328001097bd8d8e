"""Plain-text tables for the CLI: status, one job, the dead-letter list. Data in, lines out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from taskq.views import DeadJob


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
    lines = [f"{'queue':<20} {'ready':>8} {'scheduled':>10} {'reserved':>9} {'running':>8} {'dead':>8} "
             f"{'oldest ready':>13}"]
    for q, d in data["queues"].items():
        lines.append(f"{q:<20} {d['ready']:>8} {d['scheduled']:>10} {d['reserved']:>9} {d['running']:>8} "
                     f"{d['dead']:>8} {age(d['oldest_ready_age_s']):>13}{'  paused' if d.get('paused') else ''}")
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
    if data["running"]:
        lines += ["", f"{'running job':<34} {'queue':<12} {'task':<20} {'try':>3} {'for':>8}  progress"]
        for r in data["running"]:
            progress = r["progress"]
            shown = f"{bar(progress['fraction'])} {progress['text']}".rstrip() if progress else "-"
            lines.append(f"{r['id']:<34} {r['queue']:<12} {r['task'] or '?':<20} {r['attempt'] or '?':>3} "
                         f"{age(r['running_s']):>8}  {shown}")
    lines += ["", f"live workers: {len(data['workers'])}"]
    if data["workers"]:
        lines.append(f"{'worker':<34} {'host':<16} {'pid':>7} {'conc':>5} {'done':>9} {'beat':>6}  queues")
        for w in data["workers"]:
            lines.append(f"{w['id']:<34} {w['host']:<16} {w['pid']:>7} {w['concurrency']:>5} {w['processed']:>9} "
                         f"{w['heartbeat_age_s']:>5.1f}s  {','.join(w['queues'])}")
    if data["schedules"]:
        beat = data["beat"]
        lines.append("")
        lines.append(f"beat leader: {beat['leader']} (lease {beat['lease_left_s']:.1f}s left)" if beat["leader"]
                     else "beat leader: none (no `taskq beat` is running)")
        lines.append(f"{'schedule':<20} {'cron':<16} {'tz':<16} {'catchup':<8} {'last fired':<24} {'next fire':<24}"
                     " last skipped (overlap)")
        for s in data["schedules"]:
            skipped = s["last_skipped"] or ("never" if s["overlap"] == "skip" else "-")
            lines.append(f"{s['name']:<20} {s['cron']:<16} {s['tz']:<16} {s['catchup']:<8} "
                         f"{s['last_fired'] or 'never':<24} {s['next_fire']:<24} {skipped}")
    return lines


def job(view: dict[str, Any]) -> list[str]:
    """The human form of views.describe(): one `name: value` line per field, then the traceback."""
    lines = [f"{'id':<10} {view['id']}", f"{'queue':<10} {view['queue']}", f"{'task':<10} {view['task']}",
             f"{'status':<10} {view['status']}"]
    if view.get("flow"):
        f = view["flow"]
        lines.append(f"{'flow':<10} {f['id']} step {f['step']} of {f['steps']}")
    if view.get("attempt") is not None:
        lines.append(f"{'attempt':<10} {view['attempt']} of {view['max_attempts']}")
    if view.get("message_error"):
        lines.append(f"{'message':<10} {view['message_error']}")
    else:
        lines.append(f"{'args':<10} {compact(view['args'])}")
        lines.append(f"{'kwargs':<10} {compact(view['kwargs'])}")
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
    lines = [f"{'id':<34} {'task':<20} {'status':<10} {'try':>3} {'enqueued':<20}  reason"]
    for r in rows:
        lines.append(f"{r['id']:<34} {r['task'] or '?':<20} {r['status'] or '?':<10} {r['attempt'] or '?':>3} "
                     f"{r['enqueued'] or '':<20}  {r['reason'] or ''}".rstrip())
    return lines or ["no jobs"]


def queues(rows: Sequence[dict[str, Any]]) -> list[str]:
    """`taskq queue list`: one line per queue."""
    width = max([len("queue"), *(len(r["queue"]) for r in rows)])
    lines = [f"{'queue':<{width}} {'ready':>8} {'scheduled':>10} {'reserved':>9} {'running':>8} {'dead':>8}  state"]
    for r in rows:
        lines.append(f"{r['queue']:<{width}} {r['ready']:>8} {r['scheduled']:>10} {r['reserved']:>9} "
                     f"{r['running']:>8} {r['dead']:>8}  {'paused' if r['paused'] else 'active'}")
    return lines


def dead(rows: Sequence[DeadJob]) -> list[str]:
    """`taskq dlq list`: one line per dead job."""
    lines = [f"{'id':<34} {'queue':<12} {'task':<20} {'tries':>5} {'dead since':<24}  reason"]
    for r in rows:
        lines.append(f"{r.id:<34} {r.queue:<12} {r.task or '?':<20} {r.attempts or '?':>5} "
                     f"{r.dead_since or '?':<24}  {r.reason}")
    return lines


def compact(value: Any) -> str:
    """A value as one line of JSON (repr for what JSON cannot show)."""
    return json.dumps(value, default=repr, ensure_ascii=False)


def event(view: dict[str, Any]) -> str:
    """One line per streamed event: time, kind, queue, task, job, attempt, then what it says."""
    extra = [f"{name}={compact(view[name])}" for name in ("error", "reason", "delay_s", "duration_ms", "progress",
                                                            "text") if name in view]
    return "  ".join([str(view["at"]), f"{view['kind']:<9}", view["queue"], view["task"] or "?", view["job_id"],
                      f"attempt {view['attempt']}", *extra])
