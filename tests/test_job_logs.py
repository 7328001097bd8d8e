"""Job logs (DESIGN §1.1): current_job().log() and a task's stdlib records at INFO and above kept
with the job (its newest 100 lines, each cut at 500 characters, expiring with its record), sent in
batches; job.logs(), `taskq job ID --logs` and the dashboard's job page. On memory://, redis and
Cluster; the broker's lines contract (ops/logs.lua) beside."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from click.testing import CliRunner
from deployments import deployments
from newjobs import new_job

import taskq
from taskq.broker import Policy, open_broker
from taskq.broker.base import Outcome, Settlement
from taskq.broker.keys import Keys
from taskq.cli import main
from taskq.testing import drain

url = deployments("url", "memory", "redis", "cluster")
K = Keys("taskq").queue("q")


def test_150_lines_keep_the_newest_100_cut_at_500(url: str) -> None:
    app = taskq.TaskQ(url)

    @app.task
    def chatty() -> None:
        for i in range(150):
            taskq.current_job().log(f"line {i} " + "x" * (600 if i == 149 else 0))

    job = chatty.delay()
    drain(app)
    lines = job.logs()
    assert [line.text.split()[1] for line in lines] == [str(i) for i in range(50, 150)]
    assert len(lines[-1].text) == 500 and lines[0].level == "INFO"
    assert lines[0].at.tzinfo is not None and isinstance(lines[0], taskq.LogLine)
    assert asyncio.run(job.logs_async()) == lines


def test_stdlib_records_land_in_their_own_jobs_logs_only(url: str) -> None:
    app = taskq.TaskQ(url)
    logger = logging.getLogger("test_job_logs.work")
    logger.setLevel(logging.INFO)  # the app's logging lets INFO through (root stays as it is)
    barrier = threading.Barrier(8, timeout=10)

    @app.task
    def work(n: int) -> None:
        logger.debug("not kept: below INFO %d", n)
        logger.info("start %d", n)
        if n < 8:
            barrier.wait()  # eight jobs at once: their records interleave
        logger.warning("end %d", n)

    jobs = [work.delay(n) for n in range(40)]
    worker = taskq.Worker(app, concurrency=8, burst=True)
    worker.run()
    for n, job in enumerate(jobs):
        assert [(line.level, line.text) for line in job.logs()] == [("INFO", f"start {n}"), ("WARNING", f"end {n}")]


def test_keep_logs_false_keeps_none(url: str) -> None:
    app = taskq.TaskQ(url)

    @app.task(keep_logs=False)
    def quiet() -> None:
        taskq.current_job().log("dropped")

    @app.task
    def loud() -> None:
        taskq.current_job().log("kept")

    a, b = quiet.delay(), loud.delay()
    drain(app)
    assert a.logs() == [] and [line.text for line in b.logs()] == ["kept"]


def test_lines_go_with_a_progress_report_and_expire_with_the_record(url: str) -> None:
    broker = open_broker(url, policy=Policy(lease_ms=5000, result_ttl_ms=60_000))
    broker.enqueue(new_job("q", "a", b"x"))
    d = broker.fetch("q", 1, 0, "w1").deliveries[0]
    assert broker.progress("q", "a", d.token, 0.5, "half", ["1 INFO one", "2 WARNING two"])
    assert broker.append_logs("q", {"a": ["3 INFO three"], "gone": ["4 INFO never"]}) == 1
    assert [(e.at_ms, e.level, e.text) for e in broker.job_logs("q", "a")] == [
        (1, "INFO", "one"), (2, "WARNING", "two"), (3, "INFO", "three")]
    assert broker.job_logs("q", "gone") == []
    client = broker.conn.client  # type: ignore[attr-defined]
    assert client.pttl(K.logs("a")) == -1  # running: as its record, no expiry yet
    broker.settle("q", [Settlement(Outcome.OK, "a", d.token, b"\xc0")])
    assert 0 < client.pttl(K.logs("a")) <= 60_000
    broker.append_logs("q", {"a": ["5 INFO late"]})  # a late line takes the record's time left
    assert 0 < client.pttl(K.logs("a")) <= 60_000 and len(broker.job_logs("q", "a")) == 4


def test_cli_logs(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli_app

    monkeypatch.setattr(cli_app.app, "url", redis_url)
    monkeypatch.setattr(cli_app.app, "_broker", None)
    job = cli_app.add.delay(1, 2)
    cli_app.app.broker.append_logs("default", {job.id: ["1700000000000 WARNING disk <full>"]})
    result = CliRunner().invoke(main, ["job", "cli_app:app", job.id, "--logs"], prog_name="taskq")
    assert result.exit_code == 0 and "WARNING" in result.output and "disk <full>" in result.output, result.output
    assert "2023-11-14T22:13:20" in result.output
    result = CliRunner().invoke(main, ["job", "cli_app:app", job.id, "--logs", "--json"], prog_name="taskq")
    assert result.exit_code == 0 and '"text": "disk <full>"' in result.output, result.output
