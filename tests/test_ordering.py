"""Ordering keys and a task's own limits through the app and real workers (threads), on
memory:// and a real redis-server; `taskq status`, --json and the metrics show what they hold."""

from __future__ import annotations

import random
import threading
import time

import pytest
from peak import Peak
from prometheus_client import CollectorRegistry, generate_latest
from test_limits import run_fleet

import taskq
from taskq.cli.render import status
from taskq.metrics import QueueCollector
from taskq.views import snapshot
from taskq.worker.rounds import task_limits


def test_jobs_of_a_key_run_in_enqueue_order_one_at_a_time_despite_failures(app: taskq.TaskQ) -> None:
    lock = threading.Lock()
    done: dict[str, list[int]] = {}
    busy: set[str] = set()
    overlaps: list[str] = []
    rng = random.Random(7)
    fail = {(k, i) for k in "abcde" for i in range(12) if rng.random() < 0.25}

    @app.task(backoff=taskq.Backoff(base=0.01, max=0.02, jitter=False), retries=5)
    def step(key: str, i: int) -> None:
        with lock:
            if key in busy:
                overlaps.append(key)
            busy.add(key)
        time.sleep(0.002)
        with lock:
            busy.discard(key)
            if (key, i) in fail:
                fail.discard((key, i))
                raise RuntimeError("fails once")
            done.setdefault(key, []).append(i)

    jobs = [step.options(ordering_key=f"note:{k}").delay(k, i) for i in range(12) for k in "abcde"]
    run_fleet(app, "default", jobs)
    assert done == {k: list(range(12)) for k in "abcde"} and overlaps == []
    assert not fail  # the failures happened: the retries kept their place


def test_map_with_a_key_runs_in_the_items_order_and_other_keys_in_parallel(app: taskq.TaskQ) -> None:
    seen: list[int] = []
    peak = Peak()

    @app.task
    def one(i: int) -> None:
        with peak:
            seen.append(i)  # list.append is atomic
            time.sleep(0.01)

    keyed = one.options(ordering_key="k").map(range(20))
    free = [one.options(ordering_key=f"own{i}").delay(100 + i) for i in range(8)]
    run_fleet(app, "default", keyed + free)
    assert [i for i in seen if i < 100] == list(range(20)) and peak.most > 1


def test_a_tasks_own_cap_and_rate_limit_hold_across_every_worker(app: taskq.TaskQ) -> None:
    peak = Peak()

    @app.task(max_running=2)
    def capped(i: int) -> None:
        with peak:
            time.sleep(0.03)

    @app.task(rate_limit="15/s")
    def limited(i: int) -> None: ...

    @app.task
    def free(i: int) -> None: ...

    jobs = capped.map(range(10)) + limited.map(range(30)) + free.map(range(30))
    run_fleet(app, "default", jobs)
    assert peak.most == 2
    ids = [j.id for j in jobs[10:40]]
    starts = sorted(r.started_ms for r in app.broker.jobs("default", ids) if r and r.started_ms)
    assert len(starts) == 30 and max(sum(1 for s in starts if t <= s < t + 1000) for t in starts) == 15
    assert snapshot(app)["task_limits"] == {"capped": "max_running=2", "limited": "rate_limit=15/s"}


def test_status_json_and_metrics_show_what_the_limits_hold(app: taskq.TaskQ) -> None:
    app.queue("api", rate_limit="2/m")

    @app.task(queue="api")
    def call(i: int) -> None: ...

    @app.task(max_running=1)
    def render(i: int) -> None: ...

    @app.task
    def note(i: int) -> None: ...

    call.map(range(5))
    render.map(range(3))
    note.options(ordering_key="n").map(range(4))
    limits = task_limits(app.tasks.values())  # what a worker passes to fetch
    assert len(app.broker.fetch("api", 10, 0, "w", rate=(2, 60_000)).deliveries) == 2
    assert len(app.broker.fetch("default", 10, 0, "w", limits=limits).deliveries) == 2  # a render, a note
    data = snapshot(app)
    assert data["queues"]["api"]["held_by"] == {"rate": 3, "cap": 0, "ordering_key": 0, "task_limits": 0,
                                             "by_task": {}}
    assert data["queues"]["default"]["held_by"] == {"rate": 0, "cap": 0, "ordering_key": 3, "task_limits": 2,
                                                 "by_task": {"render": 2}}
    lines = status(data)
    assert "held in api: 3 by rate limit" in lines
    assert "held in default: 3 by ordering key, 2 by task limits (render 2)" in lines
    assert "limits of task render: max_running=1" in lines
    registry = CollectorRegistry()
    registry.register(QueueCollector(app, ["api", "default"]))
    text = generate_latest(registry).decode()
    assert 'taskq_queue_held_jobs{by="rate",queue="api"} 3.0' in text
    assert 'taskq_queue_held_jobs{by="ordering_key",queue="default"} 3.0' in text
    assert 'taskq_queue_held_jobs{by="task_limit",queue="default"} 2.0' in text


def test_a_task_limit_removed_lets_its_held_jobs_go(app: taskq.TaskQ) -> None:
    @app.task(max_running=1)
    def render(i: int) -> None: ...

    render.map(range(3))
    limits = task_limits(app.tasks.values())
    assert len(app.broker.fetch("default", 10, 0, "w", limits=limits).deliveries) == 1
    assert len(app.broker.fetch("default", 10, 0, "w2").deliveries) == 2  # a worker without the limit


@pytest.mark.parametrize(("options", "message"), [
    ({"rate_limit": "5/d"}, "rate_limit must look like"),
    ({"max_running": 0}, "max_running must be an int >= 1"),
])
def test_bad_task_limits_are_config_errors(app: taskq.TaskQ, options: dict[str, object], message: str) -> None:
    with pytest.raises(taskq.ConfigError, match=message):
        app.task(**options)(lambda: None)  # type: ignore[call-overload]


def test_a_bad_ordering_key_is_a_config_error(app: taskq.TaskQ) -> None:
    @app.task
    def one() -> None: ...

    for bad in ("", "a\0b", 5):
        with pytest.raises(taskq.ConfigError, match="ordering_key must be a non-empty string"):
            one.options(ordering_key=bad)  # type: ignore[arg-type]
