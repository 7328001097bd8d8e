"""taskq.contrib.django: Django's tasks framework on taskq, in a real Django project.

The project (tests/djangoproject: settings, manage.py, the app `shop` and its tasks.py) runs in
subprocesses only, so Django's settings never reach the other tests: each test's scripts set
Django up from DJANGO_SETTINGS_MODULE as a web process would, and its worker is
`taskq worker taskq.contrib.django` (or `manage.py taskq worker`) on the suite's redis-server.
The pure mappings (priority, status, errors) are tested in this process; importing them does
not configure Django. Timeouts only guard against hangs.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from taskq.broker.base import Status
from taskq.contrib.django.backend import TaskqBackend
from taskq.contrib.django.mapping import (
    attempts_made,
    error_of,
    exception_class_path,
    status_name,
    taskq_priority,
    unwrap,
)

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "djangoproject"
BIN = Path(sys.executable).parent
#: a hang guard, never a timing assertion
GUARD = 60

#: what every script starts with: Django set up as in a web process, and a few helpers
PRELUDE = """
import asyncio, datetime as dt, json, os, time
import django
django.setup()
from django.utils import timezone
from taskq.contrib.django.compat import InvalidTask, TaskResultDoesNotExist, task_backends
from shop import tasks
backend = task_backends["default"]

def until(result, *statuses):
    deadline = time.monotonic() + 50  # a hang guard
    while result.status not in statuses:
        assert time.monotonic() < deadline, (result.id, result.status)
        time.sleep(0.02)
        result.refresh()
    return result

def out(**values):
    print(json.dumps(values, default=str))
"""


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The project's environment: its settings, the suite's Redis, a database and log of its own."""
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "settings", "TASKQ_URL": redis_url,
            "PYTHONPATH": os.pathsep.join([str(PROJECT), str(ROOT)]), "TASKQ_DJANGO_DB": str(tmp_path / "db.sqlite3"),
            "SHOP_LOG": str(tmp_path / "shop.log"), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def script(env: dict[str, str], code: str) -> Any:
    """Run PRELUDE + code in a fresh interpreter; the JSON of its last line of output."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=GUARD)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), cwd=PROJECT, env=env, capture_output=True, text=True, timeout=GUARD)


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], Path]]:
    """Starts `taskq worker taskq.contrib.django` (one job at a time); yields its log. Stops it
    with SIGTERM at the end of the test and checks that it stopped cleanly."""
    procs: list[subprocess.Popen[bytes]] = []
    log = tmp_path / "worker.log"

    def start() -> Path:
        with log.open("ab") as sink:
            proc = subprocess.Popen([str(BIN / "taskq"), "worker", "taskq.contrib.django", "-c", "1"], cwd=PROJECT,
                                    env=env, stdout=sink, stderr=subprocess.STDOUT)
        procs.append(proc)
        deadline = time.monotonic() + GUARD
        while "worker started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        return log

    yield start
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=GUARD)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the worker did not stop:\n{log.read_text()}") from None
        assert code == 0, log.read_text()


# -- the pure mappings --------------------------------------------------------------------------

def test_priority_maps_djangos_range_onto_taskqs_in_order() -> None:
    mapped = [taskq_priority(p) for p in range(-100, 101)]
    assert mapped == sorted(mapped) and mapped[0] == 0 and mapped[-1] == 9 and set(mapped) == set(range(10))
    assert (taskq_priority(-81), taskq_priority(-80), taskq_priority(-1), taskq_priority(0), taskq_priority(80)) == (
        0, 1, 4, 5, 9)


def test_statuses_map_onto_djangos_four() -> None:
    assert {s: status_name(s) for s in Status} == {
        Status.QUEUED: "READY", Status.SCHEDULED: "READY", Status.RESERVED: "READY", Status.FAILED: "READY",
        Status.WAITING: "READY", Status.RUNNING: "RUNNING", Status.SUCCEEDED: "SUCCESSFUL", Status.DEAD: "FAILED",
        Status.CANCELLED: "CANCELLED"}
    assert status_name(None) == "READY"
    # a waiting job's message names the attempt to come; a running or ended one the attempt that ran
    assert attempts_made(Status.QUEUED, 1, False) == 0 and attempts_made(Status.FAILED, 2, True) == 1
    assert attempts_made(Status.RUNNING, 2, True) == 2 and attempts_made(Status.DEAD, 3, True) == 3
    assert attempts_made(Status.CANCELLED, 1, False) == 0 and attempts_made(Status.SUCCEEDED, None, True) == 0


def test_an_errors_class_path_is_read_from_its_traceback_text_never_imported() -> None:
    chained = ("Traceback (most recent call last):\n  File \"a.py\", line 1, in f\n    g()\nKeyError: 'x'\n\n"
               "During handling of the above exception, another exception occurred:\n\n"
               "Traceback (most recent call last):\n  File \"a.py\", line 3, in f\n    raise Boom()\n"
               "    ^^^^^^^^^^^^\nnowhere.to_be.Imported: line one\nline two\n")
    assert exception_class_path(chained) == "nowhere.to_be.Imported"
    assert exception_class_path("Traceback (most recent call last):\n  File \"a\", line 1\nValueError\n") == (
        "builtins.ValueError")
    assert exception_class_path("taskq.errors.TimeLimitExceeded: ran over 5s") == "taskq.errors.TimeLimitExceeded"
    assert exception_class_path("") == "builtins.Exception"
    assert error_of(Status.DEAD, None, "lost: at_most_once") == ("taskq.errors.TaskFailed", "lost: at_most_once")
    assert error_of(Status.CANCELLED, None, "expired: ...") == ("taskq.errors.JobCancelled", "expired: ...")
    assert error_of(Status.QUEUED, None, None) is None


def test_only_an_envelope_unwraps() -> None:
    assert unwrap({"taskq.contrib.django": 1, "value": 5, "args": [2, 3], "kwargs": {}}) == (5, [2, 3], {})
    assert unwrap(5) is None and unwrap({"value": 5}) is None
    assert unwrap({"taskq.contrib.django": 1, "value": 5, "args": "x", "kwargs": {}}) is None


def test_unknown_or_bad_options_are_one_line_errors() -> None:
    with pytest.raises(ImproperlyConfigured, match="unknown option 'urll'"):
        TaskqBackend("x", {"OPTIONS": {"urll": "redis://localhost"}})
    with pytest.raises(ImproperlyConfigured, match="retries"):
        TaskqBackend("x", {"OPTIONS": {"retries": -1}})
    with pytest.raises(ImproperlyConfigured, match="lease"):
        _ = TaskqBackend("x", {"OPTIONS": {"lease": 0}}).app


# -- the project ------------------------------------------------------------------------------


def test_enqueue_and_aenqueue_run_on_the_worker(env: dict[str, str], worker: Callable[[], Path]) -> None:
    worker()
    got = script(env, """
        result = tasks.add.enqueue(2, y=3)
        later = asyncio.run(tasks.add_later.aenqueue(1, 1))  # an async task, on the emails queue
        until(result, "SUCCESSFUL", "FAILED")
        asyncio.run(later.arefresh())
        while later.status != "SUCCESSFUL":
            assert later.status in ("READY", "RUNNING"), later.status
            asyncio.run(later.arefresh())
        queue = backend.app.job(later.id).queue
        out(status=result.status, value=result.return_value, args=result.args, kwargs=result.kwargs,
            later=later.return_value, later_id=later.id, queue=queue, backend=result.backend,
            flags=[backend.supports_defer, backend.supports_async_task, backend.supports_get_result,
                   backend.supports_priority])
    """)
    assert got["status"] == "SUCCESSFUL" and got["value"] == 5
    assert got["args"] == [2] and got["kwargs"] == {"y": 3}  # a succeeded job's record has no message: kept
    assert got["later"] == 2 and len(got["later_id"]) == 32 and got["queue"] == "emails"
    assert got["backend"] == "default" and got["flags"] == [True, True, True, True]


def test_a_result_goes_ready_running_successful_read_from_other_processes(
        env: dict[str, str], worker: Callable[[], Path], tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ready = script(env, f"""
        result = tasks.wait_for.enqueue({str(gate)!r})
        seen = backend.get_result(result.id)  # no worker yet: read back from Redis
        out(id=result.id, status=seen.status, attempts=seen.attempts, args=seen.args, enqueued=seen.enqueued_at,
            started=seen.started_at)
    """)
    assert ready["status"] == "READY" and ready["attempts"] == 0 and ready["args"] == [str(gate)]
    assert ready["enqueued"] is not None and ready["started"] is None
    worker()
    got = script(env, f"""
        result = tasks.wait_for.get_result({ready["id"]!r})
        seen = [result.status]
        until(result, "RUNNING")
        seen.append(result.status)
        running = dict(attempts=result.attempts, workers=result.worker_ids, started=result.started_at)
        open({str(gate)!r}, "w").close()
        until(result, "SUCCESSFUL", "FAILED")
        seen.append(result.status)
        out(seen=seen, running=running, value=result.return_value, args=result.args,
            order=result.enqueued_at <= result.started_at <= result.finished_at, attempts=result.attempts,
            last=result.last_attempted_at == result.started_at, errors=result.errors)
    """)
    assert [s for i, s in enumerate(got["seen"]) if i == 0 or got["seen"][i - 1] != s][-2:] == ["RUNNING", "SUCCESSFUL"]
    assert got["running"]["attempts"] == 1 and got["running"]["workers"][0].count(":") == 2  # host:pid:random
    assert got["value"] == "opened" and got["args"] == [str(gate)] and got["order"] and got["last"]
    assert got["attempts"] == 1 and got["errors"] == []


def test_higher_django_priority_runs_first(env: dict[str, str]) -> None:
    script(env, """
        for label, priority in [("lowest", -100), ("default", 0), ("highest", 100), ("high", 30), ("low", -30)]:
            tasks.record.using(priority=priority).enqueue(label)
        out(done=True)
    """)
    # the worker starts once all five wait: one at a time, and through manage.py
    done = run(env, sys.executable, "manage.py", "taskq", "worker", "--burst", "-c", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert Path(env["SHOP_LOG"]).read_text().split() == ["highest", "high", "default", "low", "lowest"]


def test_run_after_is_the_due_time(env: dict[str, str], worker: Callable[[], Path]) -> None:
    worker()
    got = script(env, """
        due = timezone.now() + dt.timedelta(seconds=1)
        result = tasks.add.using(run_after=due).enqueue(1, 2)
        waiting = backend.app.job(result.id).status()
        before = backend.get_result(result.id).status
        until(result, "SUCCESSFUL", "FAILED")
        out(waiting=waiting, before=before, status=result.status, after_due=result.started_at >= due)
    """)
    assert got["waiting"] == "scheduled" and got["before"] == "READY"
    assert got["status"] == "SUCCESSFUL" and got["after_due"]


def test_a_queue_not_in_queues_is_an_invalid_task(env: dict[str, str]) -> None:
    got = script(env, """
        try:
            tasks.add.using(queue_name="nope")
        except InvalidTask as exc:
            refused = str(exc)
        else:
            refused = None
        result = tasks.add.using(queue_name="emails").enqueue(1, 1)
        out(refused=refused, queue=backend.app.job(result.id).queue)
    """)
    assert got["refused"] is not None and "nope" in got["refused"]
    assert got["queue"] == "emails"


def test_a_task_taking_context_gets_its_attempt_and_result_id(env: dict[str, str], worker: Callable[[], Path]) -> None:
    worker()
    got = script(env, """
        result = tasks.whoami.enqueue("hi")  # its first attempt fails; the backend retries once
        until(result, "SUCCESSFUL", "FAILED")
        out(id=result.id, status=result.status, value=result.return_value, attempts=result.attempts)
    """)
    assert got["status"] == "SUCCESSFUL" and got["attempts"] == 2
    assert got["value"] == {"attempt": 2, "id": got["id"], "note": "hi"}


def test_a_failing_task_is_failed_with_its_errors(env: dict[str, str], worker: Callable[[], Path]) -> None:
    worker()
    got = script(env, """
        result = tasks.explode.enqueue(7)
        until(result, "SUCCESSFUL", "FAILED")
        try:
            result.return_value
        except ValueError as exc:
            value = str(exc)
        error = result.errors[0]
        out(status=result.status, errors=len(result.errors), path=error.exception_class_path,
            traceback=error.traceback, cls=error.exception_class is tasks.OrderError, args=result.args,
            attempts=result.attempts, finished=result.finished_at is not None, value=value)
    """)
    assert got["status"] == "FAILED" and got["errors"] == 1 and got["path"] == "shop.tasks.OrderError"
    assert got["traceback"].startswith("Traceback (most recent call last):")
    assert "shop.tasks.OrderError: order 7 is broken" in got["traceback"] and 'tasks.py", line' in got["traceback"]
    assert got["cls"] and got["args"] == [7] and got["attempts"] == 2 and got["finished"]
    assert got["value"] == "Task failed"


def test_get_result_of_an_unknown_id_does_not_exist(env: dict[str, str]) -> None:
    got = script(env, """
        found = []
        for job_id in ("0" * 32, ""):
            try:
                backend.get_result(job_id)
            except TaskResultDoesNotExist:
                found.append("missing")
            try:
                asyncio.run(backend.aget_result(job_id))
            except TaskResultDoesNotExist:
                found.append("missing")
        out(found=found)
    """)
    assert got["found"] == ["missing"] * 4


def test_enqueue_on_commit_stores_the_job_when_the_transaction_commits(env: dict[str, str]) -> None:
    got = script(env, """
        from django.db import transaction
        on_commit = task_backends["on_commit"]

        def stored(job_id):
            try:
                return on_commit.get_result(job_id).status
            except TaskResultDoesNotExist:
                return None

        with transaction.atomic():
            kept = tasks.add.using(backend="on_commit").enqueue(1, 2)
            inside = stored(kept.id)
        try:
            with transaction.atomic():
                dropped = tasks.add.using(backend="on_commit").enqueue(3, 4)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        out(inside=inside, committed=stored(kept.id), rolled_back=stored(dropped.id), args=kept.args)
    """)
    assert got == {"inside": None, "committed": "READY", "rolled_back": None, "args": [1, 2]}


def test_manage_py_taskq_passes_through_to_the_taskq_command(env: dict[str, str]) -> None:
    script(env, "tasks.add.enqueue(1, 2); out(done=True)")
    done = run(env, sys.executable, "manage.py", "taskq", "status", "--json")
    assert done.returncode == 0, done.stderr
    depths = json.loads(done.stdout)["queues"]
    assert depths["default"]["ready"] == 1 and "emails" in depths
    wrong = run(env, sys.executable, "manage.py", "taskq", "--backend", "nope", "status")
    assert wrong.returncode == 1 and "nope" in wrong.stderr and "Traceback" not in wrong.stderr, wrong.stderr


def test_the_worker_says_in_one_line_what_django_needs(env: dict[str, str]) -> None:
    bare = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = run(bare, str(BIN / "taskq"), "worker", "taskq.contrib.django", "--burst")
    assert done.returncode == 1 and "DJANGO_SETTINGS_MODULE" in done.stderr and "Traceback" not in done.stderr


def test_the_migration_creates_the_outbox_table(env: dict[str, str]) -> None:
    done = run(env, sys.executable, "manage.py", "migrate", "taskq")
    assert done.returncode == 0, done.stderr
    check = run(env, sys.executable, "manage.py", "makemigrations", "taskq", "--check", "--dry-run")
    assert check.returncode == 0, check.stdout + check.stderr  # the model and its migration agree
    db = sqlite3.connect(env["TASKQ_DJANGO_DB"])
    columns = {row[1]: (row[2].lower(), bool(row[3]), row[5]) for row in db.execute("PRAGMA table_info(taskq_outbox)")}
    assert list(columns) == ["id", "namespace", "queue", "job_id", "kind", "payload", "created_at"]
    assert columns["id"][2] == 1 and columns["payload"][0] == "blob"
    # a writer outside Django leaves kind and created_at to the database
    db.execute("INSERT INTO taskq_outbox (namespace, queue, job_id, payload) VALUES ('shop', 'default', 'j1', x'00')")
    assert db.execute("SELECT kind, created_at IS NOT NULL FROM taskq_outbox").fetchall() == [("job", 1)]


def test_tests_run_django_tasks_inline_without_redis(env: dict[str, str]) -> None:
    """README's recipe for users' tests: isolated() and eager() on the backend's app."""
    nowhere = {**env, "TASKQ_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    got = script(nowhere, """
        import taskq.testing
        app = backend.app
        with taskq.testing.isolated(app), taskq.testing.eager(app):
            result = tasks.whoami.enqueue("inline")
            result.refresh()
        out(status=result.status, value=result.return_value)
    """)
    assert got["status"] == "SUCCESSFUL" and got["value"]["attempt"] == 2 and got["value"]["note"] == "inline"


def test_changed_settings_build_a_new_app_that_still_knows_the_tasks(env: dict[str, str]) -> None:
    """override_settings(TASKS=...) in users' tests: the new app reads results of tasks defined
    before it (their modules are not imported again)."""
    got = script(env, """
        from django.conf import settings
        from django.test import override_settings
        result = tasks.add.enqueue(1, 2)
        changed = {"default": {**settings.TASKS["default"],
                               "OPTIONS": {**settings.TASKS["default"]["OPTIONS"], "lease": 60}}}
        with override_settings(TASKS=changed):
            again = task_backends["default"]
            out(new_app=again.app is not backend.app, lease=again.app.lease,
                status=again.get_result(result.id).status)
    """)
    assert got == {"new_app": True, "lease": 60, "status": "READY"}


def test_django_tasks_go_through_the_outbox_in_the_requests_transaction(
    env: dict[str, str], worker: Callable[[], Path]
) -> None:
    """`with backend.app.outbox(connection)` inside `transaction.atomic()`: a committed enqueue
    becomes a row, then (by `taskq relay`) exactly one job with the same id; a rolled-back one
    never exists."""
    assert run(env, sys.executable, "manage.py", "migrate", "taskq").returncode == 0
    got = script(env, """
        from django.db import connection, transaction
        with transaction.atomic(), backend.app.outbox(connection):
            kept = tasks.add.enqueue(20, 22)
        try:
            with transaction.atomic(), backend.app.outbox(connection):
                dropped = tasks.add.enqueue(1, 1)
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        with connection.cursor() as cur:
            cur.execute("SELECT job_id FROM taskq_outbox ORDER BY id")
            rows = [r[0] for r in cur.fetchall()]
        out(kept=kept.id, dropped=dropped.id, rows=rows)
    """)
    assert got["rows"] == [got["kept"]]  # the committed one only, not yet in Redis
    relay = run(env, str(BIN / "taskq"), "outbox", "taskq.contrib.django", "--dsn",
                f"sqlite:///{env['TASKQ_DJANGO_DB']}", "status", "--json")
    assert relay.returncode == 0 and json.loads(relay.stdout)["rows"] == 1, relay.stdout + relay.stderr
    proc = subprocess.Popen([str(BIN / "taskq"), "relay", "taskq.contrib.django", "--dsn",
                             f"sqlite:///{env['TASKQ_DJANGO_DB']}"], cwd=PROJECT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        worker()
        done = script(env, f"""
            result = until(backend.get_result({got['kept']!r}), "SUCCESSFUL")
            try:
                backend.get_result({got['dropped']!r})
                dropped = "exists"
            except TaskResultDoesNotExist:
                dropped = None
            out(value=result.return_value, dropped=dropped)
        """)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=GUARD)
    assert done == {"value": 42, "dropped": None}
