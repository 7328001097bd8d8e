"""Workers register with a heartbeat (`taskq status` lists them) and leave on shutdown; a
SIGKILLed worker disappears from the live list once its heartbeat lapses (lease seconds)."""

from __future__ import annotations

import json
import signal

from click.testing import CliRunner
from harness import Workers, wait_for

import taskq
from taskq.broker.base import WorkerRecord
from taskq.cli import main


def live(app: taskq.TaskQ) -> dict[str, WorkerRecord]:
    return {w.id: w for w in app.broker.live_workers()}


def test_status_lists_live_workers_and_drops_dead_ones(app: taskq.TaskQ, workers: Workers) -> None:
    first = workers.start(lease=1.0, concurrency=3)
    second = workers.start(lease=1.0, concurrency=5)
    wait_for(lambda: len(live(app)) == 2, "both workers to register")
    by_pid = {w.pid: w for w in live(app).values()}
    assert set(by_pid) == {first.pid, second.pid}
    assert by_pid[first.pid].concurrency == 3 and by_pid[second.pid].concurrency == 5
    assert list(by_pid[first.pid].queues) == (app.queues or ["default"])

    result = CliRunner().invoke(main, ["status", "faultapp:app", "--url", app.url])
    assert result.exit_code == 0, result.output
    assert "live workers: 2" in result.output
    assert all(f" {p} " in result.output for p in (first.pid, second.pid))
    result = CliRunner().invoke(main, ["status", "faultapp:app", "--url", app.url, "--json"])
    data = json.loads(result.output)
    assert {(w["pid"], w["concurrency"]) for w in data["workers"]} == {(first.pid, 3), (second.pid, 5)}
    assert all(w["heartbeat_age_s"] >= 0 and w["queues"] == (app.queues or ["default"]) for w in data["workers"])
    assert data["queues"]["default"] == {
        "ready": 0, "scheduled": 0, "reserved": 0, "running": 0, "dead": 0, "ordered": 0, "held": 0,
        "partitions": 0, "held_by": {"rate": 0, "cap": 0, "ordering_key": 0, "task_limits": 0, "by_task": {}},
        "oldest_ready_age_s": None, "paused": False, "largest_partition": None}

    first.signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: {w.pid for w in live(app).values()} == {second.pid},
             "the killed worker to drop out once its heartbeat lapses")
    second.signal(signal.SIGTERM)
    assert second.wait() == 0
    assert live(app) == {}  # a stopped worker deregisters at once
