"""Operating schedules: `taskq schedule APP list|show|pause|resume|remove|run` and the dashboard's
schedule actions (CSRF-checked POSTs, none when read-only), on memory:// and a redis-server; what
each does holds in Redis, so any beat sees it."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

import taskq
from taskq import cli
from taskq.web import create_app


@pytest.fixture
def runner(app: taskq.TaskQ, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setattr(cli.parts, "load_app", lambda path, url=None: app)
    return CliRunner()


def sched(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli.main, ["schedule", "x:app", *args])


@pytest.fixture
def planned(app: taskq.TaskQ) -> taskq.TaskQ:
    """A code schedule (`digest`, hourly) and a stored one (`report:42`, weekdays at 9 in Paris)."""

    @app.task(cron="0 * * * *")
    def digest() -> None: ...

    @app.task
    def report(account: int) -> int:
        return account

    app.schedules.upsert("report:42", report, cron="0 9 * * 1-5", tz="Europe/Paris", args=(42,), limit=10)
    return app


def test_list_and_show(planned: taskq.TaskQ, runner: CliRunner) -> None:
    listed = json.loads(sched(runner, "list", "--json").output)
    assert [(s["id"], s["source"], s["when"], s["tz"], s["runs"], s["limit"]) for s in listed] == [
        ("digest", "code", "0 * * * *", "UTC", 0, None), ("report:42", "api", "0 9 * * 1-5", "Europe/Paris", 0, 10)]
    lines = sched(runner, "list").output.splitlines()
    assert lines[0].split()[:4] == ["schedule", "task", "queue", "when"]
    assert lines[2].split()[:3] == ["report:42", "report", "default"] and lines[2].split()[-2:] == ["0/10", "api"]
    shown = sched(runner, "show", "report:42")
    assert shown.exit_code == 0 and "args        [42]" in shown.output and "source      api" in shown.output
    missing = sched(runner, "show", "nope")
    assert missing.exit_code == 1 and "no schedule 'nope'" in missing.output


def test_pause_resume_remove_and_run(planned: taskq.TaskQ, runner: CliRunner) -> None:
    assert sched(runner, "pause", "report:42").output.strip() == "paused report:42"
    info = planned.schedules.get("report:42")
    assert info is not None and info.paused and info.next_at is None
    assert "paused" in sched(runner, "list").output
    assert sched(runner, "resume", "report:42").exit_code == 0
    info = planned.schedules.get("report:42")
    assert info is not None and not info.paused and info.next_at is not None
    assert sched(runner, "pause", "digest").exit_code == 0  # a code schedule can be paused ...
    removed = sched(runner, "remove", "digest")  # ... not removed
    assert removed.exit_code == 1 and "declared in code" in removed.output
    ran = sched(runner, "run", "report:42")
    job_id = ran.output.split()[1]
    assert ran.exit_code == 0 and planned.job(job_id).status() is taskq.Status.QUEUED
    assert sched(runner, "remove", "report:42").output.strip() == "removed report:42"
    assert planned.schedules.get("report:42") is None
    gone = sched(runner, "remove", "report:42")
    assert gone.exit_code == 1 and "no schedule 'report:42'" in gone.output
    assert sched(runner, "frobnicate", "x").exit_code == 2  # click's usage error


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_dashboard_actions_need_the_csrf_token(planned: taskq.TaskQ) -> None:
    client = TestClient(create_app(planned))
    page = client.get("/workers").text
    assert "report:42" in page and "0 9 * * 1-5" in page and "0/10" in page
    refused = client.post("/schedules/pause", data={"schedule": "report:42"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert not planned.schedules.get("report:42").paused  # type: ignore[union-attr]
    token = csrf_of(page)
    paused = client.post("/schedules/pause", data={"schedule": "report:42", "csrf": token}, follow_redirects=False)
    assert paused.status_code == 303 and planned.schedules.get("report:42").paused  # type: ignore[union-attr]
    assert "pause report:42: done" in client.get(paused.headers["location"]).text
    ran = client.post("/schedules/run", data={"schedule": "digest", "csrf": token})
    assert ran.status_code == 200 and "run digest: enqueued" in ran.text
    assert planned.broker.depths("default").ready == 1
    removed = client.post("/schedules/remove", data={"schedule": "digest", "csrf": token})
    assert removed.status_code == 400 and "declared in code" in removed.text
    assert client.post("/schedules/remove", data={"schedule": "report:42", "csrf": token}).status_code == 200
    assert planned.schedules.get("report:42") is None
    assert client.post("/schedules/explode", data={"schedule": "digest", "csrf": token}).status_code == 400


def test_dashboard_read_only_hides_and_refuses_schedule_actions(planned: taskq.TaskQ) -> None:
    client = TestClient(create_app(planned, read_only=True))
    page = client.get("/workers").text
    assert "report:42" in page and 'method="post"' not in page
    refused = client.post("/schedules/pause", data={"schedule": "report:42"})
    assert refused.status_code == 403 and "read-only" in refused.text
    assert not planned.schedules.get("report:42").paused  # type: ignore[union-attr]
