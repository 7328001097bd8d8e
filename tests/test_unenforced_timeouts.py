"""A sync task's timeout= cannot stop it on a thread: a worker without a supervisor says so once, at
start, naming those tasks; async tasks (cancelled at the limit) and `-p` children do not warn."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import taskq
from taskq.log import get_logger
from taskq.worker import Worker, watchdog

_names = itertools.count()
EVENT = "timeout= cannot stop these sync tasks on threads"


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    structlog.reset_defaults()  # a CLI test may have configured a level that hides warnings
    monkeypatch.setattr(watchdog, "log", get_logger("taskq.worker"))  # not one cached earlier
    with structlog.testing.capture_logs() as captured:
        yield captured
    structlog.reset_defaults()


def warnings(app: taskq.TaskQ, logs: list[dict[str, Any]], **options: Any) -> list[dict[str, Any]]:
    Worker(app, burst=True, **options).run()
    return [e for e in logs if e["event"].startswith(EVENT)]


def new_app() -> taskq.TaskQ:
    return taskq.TaskQ(f"memory://timeouts-{next(_names)}")


def test_sync_tasks_with_a_timeout_are_named_in_one_line(logs: list[dict[str, Any]]) -> None:
    app = new_app()

    @app.task(timeout=1)
    def export() -> None: ...

    @app.task(timeout=5)
    def resize() -> None: ...

    @app.task(timeout=2)
    async def fetch() -> None: ...

    @app.task
    def plain() -> None: ...

    @app.task(timeout=1, queue="elsewhere")
    def other_queue() -> None: ...

    [line] = warnings(app, logs, queues=["default"])  # a worker of another queue would not run other_queue
    assert line["log_level"] == "warning" and line["tasks"] == ["export", "resize"]
    assert "-p N" in line["event"]


def test_no_warning_under_a_supervisor_for_async_tasks_or_without_timeouts(logs: list[dict[str, Any]]) -> None:
    supervised = new_app()

    @supervised.task(timeout=1)
    def export() -> None: ...

    assert warnings(supervised, logs, kill_on_timeout=True) == []  # what -p gives its processes
    async_only = new_app()

    @async_only.task(timeout=1)
    async def fetch() -> None: ...

    assert warnings(async_only, logs) == []
    no_timeouts = new_app()

    @no_timeouts.task
    def plain() -> None: ...

    assert warnings(no_timeouts, logs) == []
