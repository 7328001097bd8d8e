"""What `taskq status` shows, as data: queues, running jobs, live workers, the beat leader, schedules."""

from __future__ import annotations

import datetime as dt
from typing import Any

from taskq.app import TaskQ
from taskq.records import describe, known_queues

#: running jobs listed per queue (the longest-held first)
RUNNING_SHOWN = 20


def stamp(ms: int) -> str:
    """A unix-ms instant as ISO 8601 UTC, to the second."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot(app: TaskQ) -> dict[str, Any]:
    """One reading of everything `taskq status` reports (raises BrokerError if Redis is down)."""
    broker = app.broker
    now = broker.time_ms()
    queues = known_queues(app)
    workers = []
    for w in sorted(broker.live_workers(), key=lambda w: w["id"]):
        workers.append({
            "id": w["id"], "host": w.get("host", ""), "pid": int(w.get("pid") or 0),
            "queues": [q for q in w.get("queues", "").split(",") if q],
            "concurrency": int(w.get("concurrency") or 0), "processed": int(w.get("processed") or 0),
            "heartbeat_age_s": round((now - int(w.get("beat_ms") or now)) / 1000, 3),
        })
    leader = broker.leader()
    schedules = []
    for name, s in sorted(app.schedules.items()):
        state = broker.schedule_state(s.queue, name)
        fired = int(state.job.rsplit(":", 1)[1]) if state is not None and state.job else None
        schedules.append({
            "name": name, "task": s.task.name, "queue": s.queue, "cron": s.cron.expr, "tz": s.cron.tz,
            "catchup": s.catchup, "last_fired": None if fired is None else stamp(fired),
            "next_fire": stamp(s.cron.next_after(max(now, state.last if state else now))),
        })
    depths = {}
    running = []
    for q in queues:
        oldest = broker.oldest_ready_ms(q)
        depths[q] = {**broker.depths(q),
                     "oldest_ready_age_s": None if oldest is None else round(max(0, now - oldest) / 1000, 3)}
        leased = broker.running(q, RUNNING_SHOWN)
        for (job_id, _), fields in zip(leased, broker.many_job_fields(q, [i for i, _ in leased]), strict=True):
            view = describe(app, q, job_id, fields)
            started = int(fields.get("started_ms", b"0") or 0)
            running.append({"id": job_id, "queue": q, "task": view["task"], "attempt": view["attempt"],
                            "running_s": round(max(0, now - started) / 1000, 3) if started else None,
                            "worker": (fields.get("token", b"").decode("utf-8", "replace").rsplit(":", 1)[0]
                                       or None),
                            "progress": view.get("progress")})
    return {
        "time": stamp(now),
        "queues": depths,
        "running": running,
        "workers": workers,
        "beat": {"leader": leader[0] if leader else None,
                 "lease_left_s": round(leader[1] / 1000, 3) if leader else None},
        "schedules": schedules,
    }
